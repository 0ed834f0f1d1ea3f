"""Networks: the LAPACK-free orthogonal initialiser equals flax's, seed by seed; `nets.Conv`
is flax's convolution with gradients XLA keeps in its fast layout inside loops."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman import nets
from bellman.nets import MLP, orthogonal


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (256, 17), (3, 5, 8)])
def test_orthogonal_equals_flax(shape: tuple[int, ...]) -> None:
    key = jax.random.PRNGKey(sum(shape))
    ours = orthogonal(1.7)(key, shape)
    theirs = nn.initializers.orthogonal(1.7)(key, shape)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_orthogonal_under_vmap_is_orthonormal() -> None:
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    q = jax.jit(jax.vmap(lambda k: orthogonal()(k, (64, 32))))(keys)
    eye = jnp.einsum("bij,bik->bjk", q, q)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(32), eye.shape), atol=1e-5)


def test_mlp_shapes_and_output_scale() -> None:
    mlp = MLP((64, 64), 3, "tanh", out_scale=0.01)
    params = mlp.init(jax.random.PRNGKey(1), jnp.zeros((1, 5)))
    out = mlp.apply(params, jnp.ones((7, 5)))
    assert out.shape == (7, 3)
    assert float(jnp.abs(out).max()) < 0.1


def _conv_loss(conv: nn.Module):
    return lambda params, x: jnp.sum(jnp.sin(conv.apply(params, x)) ** 2)


@pytest.mark.parametrize(
    ("kernel", "padding", "strides"),
    [
        ((3, 3), "SAME", 1),
        ((1, 1), "SAME", 1),
        ((3, 3), "VALID", 1),
        ((2, 4), "SAME", 1),
        ((3, 3), ((2, 0), (1, 1)), 1),
        ((3, 3), "SAME", 2),  # another stride: lax's own convolution
    ],
)
def test_conv_equals_flax_with_gradients(kernel: tuple[int, int], padding, strides: int) -> None:
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 9, 7, 5))
    theirs = nn.Conv(6, kernel, strides=strides, padding=padding)
    ours = nets.Conv(6, kernel, strides=strides, padding=padding)
    params = theirs.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(ours.init(jax.random.PRNGKey(0), x)) == jax.tree.structure(params)
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), atol=1e-5)
    g_ours = jax.grad(_conv_loss(ours), (0, 1))(params, x)
    g_theirs = jax.grad(_conv_loss(theirs), (0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv_gradient_in_a_loop_keeps_the_fast_layout() -> None:
    """Every convolution of a gradient step compiled inside `fori_loop` is NHWC x HWIO ->
    NHWC (XLA's `b01f_01io->b01f`), the form its CPU backend runs with its fast kernel
    (`flax.linen.Conv`'s gradients there come out as `f01b_i01o->01bf`, many times slower)."""
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 9, 9, 3))
    conv = nn.Sequential([nets.Conv(4, (3, 3)), nn.relu, nets.Conv(2, (3, 3))])
    params = conv.init(jax.random.PRNGKey(0), x)
    step = lambda p: jax.tree.map(lambda w, g: w - 0.1 * g, p, jax.grad(_conv_loss(conv))(p, x))
    loop = jax.jit(lambda p: jax.lax.fori_loop(0, 3, lambda i, p: step(p), p))
    text = loop.lower(params).compile().as_text()
    layouts = re.findall(r"convolution\(.*?dim_labels=([^,\s]+)", text)
    assert len(layouts) == 5  # 2 forward, 2 kernel gradients, the gradient between them
    assert set(layouts) == {"b01f_01io->b01f"}
