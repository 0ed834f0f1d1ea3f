"""Networks shared by the algorithms (Flax linen): every MLP is built by `mlp`."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.linear import default_kernel_init

from bellman import config as cfg
from bellman.envs.spaces import EnvSpec


def orthonormal_columns(a: jax.Array) -> jax.Array:
    """The Q of a = QR with diag(R) > 0, for a `[m, n]` matrix with m >= n.

    Gram-Schmidt with re-orthogonalisation ("twice is enough"), in plain XLA operations. JAX's
    `jnp.linalg.qr` calls LAPACK, which under `vmap` splits the batch over XLA's CPU thread pool
    and waits for it from a pool thread: with as few threads as a small machine has, that can
    deadlock. Initialising the networks of many seeds at once is exactly that case.
    """
    m, n = a.shape

    def column(j: jax.Array, q: jax.Array) -> jax.Array:
        v = a[:, j]
        for _ in range(2):
            v = v - q @ (q.T @ v)  # columns >= j of q are still zero
        return q.at[:, j].set(v / jnp.linalg.norm(v))

    return jax.lax.fori_loop(0, n, column, jnp.zeros((m, n), a.dtype))


def orthogonal(scale: float = 1.0) -> nn.initializers.Initializer:
    """Orthogonal initialisation (Saxe et al., 2014), the same matrices as flax's `orthogonal`
    for the same key, computed without LAPACK (see `orthonormal_columns`)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        n_cols = shape[-1]
        n_rows = math.prod(shape) // n_cols
        transpose = n_rows < n_cols
        matrix_shape = (n_cols, n_rows) if transpose else (n_rows, n_cols)
        q = orthonormal_columns(jax.random.normal(key, matrix_shape, dtype))
        if transpose:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


ACTIVATIONS = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "leaky_relu": nn.leaky_relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
}


def mlp(
    x: jax.Array,
    hidden_sizes: Sequence[int],
    activation: str,
    *,
    kernel_init: nn.initializers.Initializer = default_kernel_init,
    layer_norm: bool = False,
) -> jax.Array:
    """The hidden layers of an MLP on features `x` `[B, F]` -> `[B, hidden_sizes[-1]]`: per
    width, Dense (zero bias), LayerNorm if asked (before the activation), the activation.

    Call it inside a module's `nn.compact` method: its layers belong to that module and are named
    as if written there (`Dense_0`, `LayerNorm_0`, ...), so the parameters of every network built
    with it keep the names, and for a key the values, they had when each network wrote its loop.
    Layers are named in the order they are constructed: write `x = mlp(x, ...)`, then the head
    (in `nn.Dense(1)(mlp(x, ...))` the head would be built first and take the name `Dense_0`).
    """
    act = ACTIVATIONS[activation]
    for size in hidden_sizes:
        x = nn.Dense(size, kernel_init=kernel_init)(x)
        if layer_norm:
            x = nn.LayerNorm()(x)
        x = act(x)
    return x


def check_mlp(config: Any) -> None:
    """Raise ConfigError unless `config.hidden_sizes` and `config.activation` describe an MLP."""
    cfg.require(
        len(config.hidden_sizes) > 0 and all(h >= 1 for h in config.hidden_sizes),
        "hidden_sizes must be one or more positive widths",
    )
    cfg.require(config.activation in ACTIVATIONS, f"unknown activation '{config.activation}'")


class MLP(nn.Module):
    """Fully connected layers with orthogonal initialisation (Saxe et al., 2014).

    Hidden layers use gain sqrt(2) and zero bias, the output layer gain `out_scale`, as in the
    PPO implementation studies (Engstrom et al., 2020; Andrychowicz et al., 2021).
    """

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "tanh"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = mlp(x, self.hidden_sizes, self.activation, kernel_init=orthogonal(math.sqrt(2.0)))
        return nn.Dense(self.out_size, kernel_init=orthogonal(self.out_scale))(x)


def obs_features(obs: jax.Array, spec: EnvSpec) -> jax.Array:
    """A network's input features: one-hot state indices for a finite env, else the flattened
    observation as float32. `obs` is `[..., *obs_shape]`."""
    if spec.num_states is not None:
        return jax.nn.one_hot(obs, spec.num_states, dtype=jnp.float32)
    return flatten_obs(obs, spec.obs_shape)


def flatten_obs(obs: jax.Array, obs_shape: tuple[int, ...]) -> jax.Array:
    """Flatten the observation axes of `[..., *obs_shape]` into one feature axis, as float32."""
    batch_shape = obs.shape[: obs.ndim - len(obs_shape)]
    return obs.reshape((*batch_shape, -1)).astype(jnp.float32)


_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_nhwc(x: jax.Array, w: jax.Array, pad: Sequence[tuple[int, int]]) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, (1, 1), list(pad), dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_same_layout(x: jax.Array, w: jax.Array, pad: tuple[tuple[int, int], ...]) -> jax.Array:
    return _conv_nhwc(x, w, pad)


def _conv_same_layout_fwd(
    x: jax.Array, w: jax.Array, pad: tuple[tuple[int, int], ...]
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _conv_nhwc(x, w, pad), (x, w)


def _conv_same_layout_bwd(
    pad: tuple[tuple[int, int], ...], res: tuple[jax.Array, jax.Array], dy: jax.Array
) -> tuple[jax.Array, jax.Array]:
    x, w = res
    # y[b,i,j,o] = sum_{a,c,f} x_pad[b, i+a, j+c, f] w[a,c,f,o], so
    # dL/dx = dy convolved with the flipped kernel (input and output channels swapped), and
    # dL/dw[a,c,f,o] = sum_{b,i,j} x_pad[b, i+a, j+c, f] dy[b,i,j,o]: a convolution of x with
    # batch and channels swapped, whose kernel is dy. Both are written in NHWC/HWIO.
    kh, kw = w.shape[:2]
    back = ((kh - 1 - pad[0][0], kh - 1 - pad[0][1]), (kw - 1 - pad[1][0], kw - 1 - pad[1][1]))
    dx = _conv_nhwc(dy, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2), back)
    dw = _conv_nhwc(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), pad).transpose(1, 2, 0, 3)
    return dx, dw


_conv_same_layout.defvjp(_conv_same_layout_fwd, _conv_same_layout_bwd)


def conv_nhwc(
    inputs: jax.Array,
    kernel: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    precision: Any = None,
    **unused: Any,
) -> jax.Array:
    """`jax.lax.conv_general_dilated` for stride-1 2-D convolutions of NHWC images with HWIO
    kernels, whose gradients are written as two more NHWC/HWIO convolutions.

    The same function and the same gradients (to the bit) as XLA's, for `nn.Conv`'s
    `conv_general_dilated`. The reason is speed on a CPU: XLA expresses a convolution's
    gradients with other layouts (batch and channels swapped) and turns them back into the
    layout its fast convolution kernel needs only in the program's top level. Inside a loop
    (`fori_loop`, `scan`, the chunk of updates every bellman runner compiles) or a branch of
    `cond`, they stay in the slow form: 1.7 s against 0.09 s for the gradient of a residual
    tower of 4 blocks of 32 channels on a batch of 256 Go boards. Other strides, dilations
    and groups go to `jax.lax.conv_general_dilated` unchanged.
    """
    plain = (
        tuple(window_strides) != (1, 1)
        or any(d != 1 for d in (lhs_dilation or ()))
        or any(d != 1 for d in (rhs_dilation or ()))
        or feature_group_count != 1
        or inputs.ndim != 4
        or dimension_numbers != jax.lax.conv_dimension_numbers(inputs.shape, kernel.shape, _NHWC)
    )
    if plain:
        return jax.lax.conv_general_dilated(
            inputs,
            kernel,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            precision=precision,
        )
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(inputs.shape[1:3], kernel.shape[:2], (1, 1), padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv_same_layout(inputs, kernel, pads)


def Conv(features: int, kernel_size: Sequence[int], **kwargs: Any) -> nn.Conv:
    """`flax.linen.Conv` (NHWC, the same parameters) with the gradients of `conv_nhwc`."""
    return nn.Conv(features, tuple(kernel_size), conv_general_dilated=conv_nhwc, **kwargs)


class PatchConv(nn.Module):
    """A VALID 2-D convolution over NHWC images, written as its patches and a dense layer.

    The same function as `flax.linen.Conv(features, (k, k), strides=(s, s), padding="VALID")`,
    with the kernel stored as `[k * k * C, features]` (patch rows ordered by kernel row, kernel
    column, channel). For the small images of RL (MinAtar's 10x10, Atari's 84x84) XLA computes
    this form's weight gradient several times faster on a CPU than a convolution's.
    """

    features: int
    kernel: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel, self.stride
        rows = (x.shape[-3] - k) // s + 1
        cols = (x.shape[-2] - k) // s + 1
        patches = [
            x[..., i : i + s * (rows - 1) + 1 : s, j : j + s * (cols - 1) + 1 : s, :]
            for i in range(k)
            for j in range(k)
        ]
        return nn.Dense(self.features)(jnp.concatenate(patches, axis=-1))


class _QMLP(nn.Module):
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = mlp(x, self.hidden_sizes, self.activation)
        return nn.Dense(1)(x)[..., 0]


class QEnsemble(nn.Module):
    """`num` independent critics Q_i(s, a) of continuous actions, evaluated in one batched pass:
    features `[B, F]` and actions `[B, A]` -> `[num, B]`. Each critic is an MLP on the
    concatenation [s, a] (Lillicrap et al., 2016, feed the action at the first layer instead
    of the second: the same function class, one matrix product fewer)."""

    num: int
    hidden_sizes: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, features: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([features, action.reshape((*action.shape[:1], -1))], axis=-1)
        critics = nn.vmap(
            _QMLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        return critics(self.hidden_sizes, self.activation)(x)


def box_affine(space: Any) -> tuple[jax.Array, jax.Array]:
    """(scale, offset) mapping [-1, 1] onto a bounded Box: a = offset + scale * y."""
    low = jnp.asarray(space.low, jnp.float32).reshape(space.shape)
    high = jnp.asarray(space.high, jnp.float32).reshape(space.shape)
    return (high - low) / 2.0, (high + low) / 2.0
