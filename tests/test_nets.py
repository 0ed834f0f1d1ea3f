"""Networks: the LAPACK-free orthogonal initialiser equals flax's, seed by seed."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
