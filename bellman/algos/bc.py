"""Behaviour cloning: supervised learning of the dataset's actions from its observations.

The algorithm, as the offline runner drives it:

    policy pi(s; theta); the dataset's feature mean and std                     -> `init`, `prepare`
    for each update:
        sample a minibatch (s, a) from the dataset D                              -> runner
        discrete actions:   a gradient step on -mean log softmax(logits(s))_a    -> `loss`
        continuous actions: a gradient step on mean ||mu(s) - a||^2, mu(s) in the box
                            (offset + scale tanh(.) for a bounded box)           -> `loss`

The classification loss is the negative log-likelihood of a categorical policy; the regression
loss is that of a Gaussian with a fixed variance (a deterministic tanh actor, as CORL's BC),
summed over the action's dimensions (CORL averages them: under Adam the scale changes nothing
but the logged loss).
Observations are standardised by the dataset's statistics (`normalize_obs`). `greedy` is the
argmax or mu(s). DAgger (`algos.dagger`) takes the same network and loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman import nets
from bellman.buffers import Batch
from bellman.contracts import DataStats, OfflineLoop
from bellman.envs.spaces import Box, Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import box_affine, obs_features
from bellman.ops.normalization import standardize


@dataclass(frozen=True)
class BCConfig(OfflineLoop):
    """Behaviour cloning's settings; the defaults are CORL's BC on D4RL (Tarasov et al., 2023):
    Adam at 3e-4, batch 256, 2 x 256 ReLU, standardised observations."""

    learning_rate: float = 3e-4
    """Adam step size."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "relu"
    """Activation of the hidden layers."""
    normalize_obs: bool = True
    """Standardise observations by the dataset's per-feature mean and std."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        super().validate()
        cfg.positive(self, "learning_rate")
        nets.check_mlp(self)


Config = BCConfig
DEFAULT_STEPS = 100_000
"""Gradient steps per seed."""

evaluation_action = None
"""The return a run reports is `greedy`'s."""
evaluation_memory = None


def check_env(config: Any, spec: EnvSpec) -> None:
    """Raise EnvError unless the actions are Discrete or a Box."""
    if not isinstance(spec.action_space, Discrete | Box):
        raise EnvError(
            "behaviour cloning handles Discrete and Box actions, not "
            f"{describe(spec.action_space)} of '{spec.id}'"
        )


class Policy(nn.Module):
    """Logits `[B, n]` (Discrete), or the action `[B, *A]` (Box: squashed into a bounded box)."""

    space: Discrete | Box
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nets.mlp(x, self.hidden_sizes, self.activation)
        if isinstance(self.space, Discrete):
            return nn.Dense(self.space.n)(x)
        out = nn.Dense(math.prod(self.space.shape))(x).reshape((*x.shape[:-1], *self.space.shape))
        if self.space.bounded:
            scale, offset = box_affine(self.space)
            return offset + scale * jnp.tanh(out)
        return out


class BCState(struct.PyTreeNode):
    params: Any
    opt: optax.OptState
    obs_mean: jax.Array
    """`[F]` the dataset's feature means (0 without `normalize_obs`)."""
    obs_std: jax.Array
    """`[F]` their standard deviations (1 without `normalize_obs`)."""
    gradient_step: jax.Array


def network(config: Any, spec: EnvSpec) -> Policy:
    return Policy(cast(Any, spec.action_space), config.hidden_sizes, config.activation)


def _optimizer(config: Any) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def init(key: jax.Array, config: Any, spec: EnvSpec, total_updates: int) -> BCState:
    """A random policy; standardisation by the identity until `prepare`."""
    features = obs_features(jnp.zeros((1, *spec.obs_shape), spec.obs_dtype), spec)
    params = network(config, spec).init(key, features)
    size = features.shape[-1]
    return BCState(
        params=params,
        opt=_optimizer(config).init(params),
        obs_mean=jnp.zeros((size,), jnp.float32),
        obs_std=jnp.ones((size,), jnp.float32),
        gradient_step=jnp.zeros((), jnp.int32),
    )


def prepare(config: Any, spec: EnvSpec, state: BCState, stats: DataStats) -> BCState:
    """The dataset's feature statistics, with `normalize_obs`."""
    if not config.normalize_obs:
        return state
    return state.replace(obs_mean=stats.obs_mean, obs_std=stats.obs_std)


def features(spec: EnvSpec, state: Any, obs: jax.Array) -> jax.Array:
    """The policy's input: observations as features, standardised by the state's statistics
    (which are 0 and 1 without normalisation, so the standardisation is then exact)."""
    x = obs_features(obs, spec)
    return jnp.where(state.obs_std > 0, standardize(x, state.obs_mean, state.obs_std), x)


def output(config: Any, spec: EnvSpec, params: Any, state: Any, obs: jax.Array) -> jax.Array:
    """The network's logits or actions for observations `[B, ...]`."""
    return cast(jax.Array, network(config, spec).apply(params, features(spec, state, obs)))


def greedy(config: Any, spec: EnvSpec, state: BCState, obs: jax.Array) -> jax.Array:
    """argmax_a logits(s)_a, or mu(s)."""
    out = output(config, spec, state.params, state, obs)
    if isinstance(spec.action_space, Discrete):
        return jnp.argmax(out, axis=-1).astype(jnp.int32)
    return out


def loss(
    params: Any, config: Any, spec: EnvSpec, state: Any, obs: jax.Array, action: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Cross-entropy of the dataset's discrete actions, or the mean squared error of the
    continuous ones (summed over action dimensions); and metrics."""
    out = output(config, spec, params, state, obs)
    if isinstance(spec.action_space, Discrete):
        log_probs = jax.nn.log_softmax(out)
        nll = -jnp.take_along_axis(log_probs, action[:, None].astype(jnp.int32), axis=-1)[:, 0]
        accuracy = jnp.mean(jnp.argmax(out, axis=-1) == action)
        return jnp.mean(nll), {"accuracy": accuracy}
    error = (out - action).reshape((out.shape[0], -1))
    mse = jnp.mean(jnp.sum(error**2, axis=-1))
    return mse, {"action_abs_error": jnp.mean(jnp.abs(error))}


def learn(
    config: Any, spec: EnvSpec, state: BCState, batch: Batch, key: jax.Array
) -> tuple[BCState, dict[str, jax.Array]]:
    """One gradient step of the cloning loss on a minibatch."""
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(
        state.params, config, spec, state, batch.obs, batch.action
    )
    updates, opt = _optimizer(config).update(grads, state.opt, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(params=params, opt=opt, gradient_step=state.gradient_step + 1)
    return new_state, {"bc_loss": value, **metrics}
