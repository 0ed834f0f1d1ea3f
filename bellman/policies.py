"""The policy pi_theta(a | s) and value V_phi(s) networks of the policy-gradient algorithms
(REINFORCE, A2C, PPO): separate MLPs, and the action distribution the policy's output defines.

- Discrete actions: a categorical over the actor's logits.
- Box actions: a diagonal Gaussian whose mean is the actor's output and whose log standard
  deviation is a learned vector, the same in every state (Schulman et al., 2015; the PPO paper);
  with `squash`, the Gaussian's sample goes through tanh and is scaled to the box's bounds
  (Haarnoja et al., 2018), so actions never leave the box. Without it, actions are clipped to
  the box when sent to the env (`runners.common.env_action`) and the unclipped sample is what
  the algorithm learns from.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import jax
import jax.numpy as jnp

from bellman import config as cfg
from bellman.distributions import Categorical, DiagGaussian, TanhGaussian
from bellman.envs.spaces import Box, Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import MLP, check_mlp, obs_features
from bellman.ops import normalization

Distribution = Categorical | DiagGaussian | TanhGaussian

LOG_STD_BOUND = 20.0
"""`init_log_std` lies in [-20, 20]: standard deviations from 2e-9 to 5e8, far inside float32."""


class NetworkConfig(Protocol):
    """The config fields this module reads (PPOConfig, A2CConfig and ReinforceConfig have them)."""

    @property
    def hidden_sizes(self) -> tuple[int, ...]: ...
    @property
    def activation(self) -> str: ...
    @property
    def init_log_std(self) -> float: ...
    @property
    def squash(self) -> bool: ...
    @property
    def normalize_obs(self) -> bool: ...


def validate(config: NetworkConfig) -> None:
    """Raise ConfigError for network settings out of range."""
    check_mlp(config)
    cfg.within(config, -LOG_STD_BOUND, LOG_STD_BOUND, "init_log_std")


def check_env(algo: str, config: NetworkConfig, spec: EnvSpec) -> None:
    """Raise EnvError if these networks cannot act in the env."""
    space = spec.action_space
    if not isinstance(space, Discrete | Box):
        raise EnvError(
            f"{algo} cannot handle the action space {describe(space)} of '{spec.id}'; it handles "
            "Discrete and Box actions"
        )
    if config.normalize_obs and spec.num_states is not None:
        raise EnvError(
            f"--normalize-obs does not apply to '{spec.id}': its observations are state indices "
            "(the networks see them one-hot)"
        )
    if config.squash and not (isinstance(space, Box) and space.bounded):
        raise EnvError(
            f"--squash needs a bounded Box action space; '{spec.id}' has {describe(space)}"
        )


def networks(config: NetworkConfig, spec: EnvSpec) -> tuple[MLP, MLP]:
    """The actor (logits, or the Gaussian's mean) and the critic (V), separate MLPs."""
    space = spec.action_space
    assert isinstance(space, Discrete | Box)
    out = space.n if isinstance(space, Discrete) else space.size
    actor = MLP(config.hidden_sizes, out, config.activation, out_scale=0.01)
    critic = MLP(config.hidden_sizes, 1, config.activation, out_scale=1.0)
    return actor, critic


def init(key: jax.Array, config: NetworkConfig, spec: EnvSpec) -> dict[str, Any]:
    """Fresh parameters: `actor`, `critic`, and `log_std` for Box actions."""
    actor_key, critic_key = jax.random.split(key)
    actor, critic = networks(config, spec)
    features = obs_features(jnp.zeros((1, *spec.obs_shape), spec.obs_dtype), spec)
    params: dict[str, Any] = {
        "actor": actor.init(actor_key, features),
        "critic": critic.init(critic_key, features),
    }
    if isinstance(spec.action_space, Box):
        params["log_std"] = jnp.full(spec.action_space.shape, config.init_log_std, jnp.float32)
    return params


def features(
    config: NetworkConfig,
    spec: EnvSpec,
    obs_stats: normalization.RunningMeanStd,
    obs: jax.Array,
) -> jax.Array:
    """The networks' input: observations standardised with the running statistics when
    `normalize_obs` (the same statistics while acting, learning and evaluating), as features."""
    if config.normalize_obs:
        obs = normalization.normalize(obs_stats, obs)
    return obs_features(obs, spec)


def policy(
    config: NetworkConfig, spec: EnvSpec, params: dict[str, Any], x: jax.Array
) -> Distribution:
    """pi_theta(. | s) for a batch of features `x`."""
    actor, _ = networks(config, spec)
    out = cast(jax.Array, actor.apply(params["actor"], x))
    space = spec.action_space
    if isinstance(space, Discrete):
        return Categorical(out)
    assert isinstance(space, Box)
    mean = out.reshape((*out.shape[:-1], *space.shape))
    log_std = jnp.broadcast_to(params["log_std"], mean.shape)
    if not config.squash:
        return DiagGaussian(mean, log_std)
    low = jnp.asarray(space.low, jnp.float32).reshape(space.shape)
    high = jnp.asarray(space.high, jnp.float32).reshape(space.shape)
    scale = jnp.broadcast_to((high - low) / 2.0, mean.shape)
    return TanhGaussian(mean, log_std, scale, jnp.broadcast_to((high + low) / 2.0, mean.shape))


def value(config: NetworkConfig, spec: EnvSpec, params: dict[str, Any], x: jax.Array) -> jax.Array:
    """V_phi(s) for a batch of features `x`."""
    _, critic = networks(config, spec)
    return cast(jax.Array, critic.apply(params["critic"], x))[..., 0]
