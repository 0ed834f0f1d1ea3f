"""REINFORCE (Williams, 1992): the Monte-Carlo policy gradient, in the lectures' three steps.

    repeat:
        sample m complete episodes tau^i from pi_theta          -> the runner (`EPISODIC`), `act`
        grad J(theta) ~ 1/m sum_i sum_t grad log pi_theta(a_t^i | s_t^i) Psi_t^i    -> `loss`
        theta <- theta + alpha grad J(theta)                                        -> `learn`

and the weight Psi_t, refined step by step (`reward_to_go`, `baseline`):

    1. the whole episode's return   Psi_t = R(tau) = sum_t' gamma^t' r_t'            (plain)
    2. the reward-to-go             Psi_t = G_t = sum_{t' >= t} gamma^(t' - t) r_t'   (causality)
    3. minus a baseline b(s_t)      Psi_t = G_t - b(s_t): `mean`, the running mean of the
       returns of earlier updates, or `learned`, V_phi(s_t) fitted to G_t by regression

Every rollout starts `num_envs` fresh episodes and runs `num_steps` steps (by default the env's
time limit); each env contributes its first episode, and the steps after that episode's end are
masked out (using them would favour short episodes, which bias the gradient). An episode still
running after `num_steps` is cut there, as a time limit would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from bellman import config as cfg
from bellman import policies
from bellman.envs.spaces import EnvSpec
from bellman.errors import EnvError
from bellman.ops import normalization
from bellman.ops.returns import discounted_returns
from bellman.rollout import Rollout, first_episode

EPISODIC = True
"""Rollouts restart every env and run whole episodes (read by the on-policy runners)."""
evaluation_action = None
"""The return a run reports is the greedy policy's, the distribution's mode (`greedy`)."""
evaluation_memory = None


@dataclass(frozen=True)
class ReinforceConfig:
    """REINFORCE's settings; the defaults (8 episodes per update, Adam) suit CartPole."""

    num_envs: int = 8
    """Episodes per update, m, one per env."""
    num_steps: int = 0
    """Steps per rollout; 0 means the env's time limit, so that every episode completes."""
    learning_rate: float = 3e-3
    """Adam step size alpha at the start of training."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over training."""
    gamma: float = 0.99
    """Discount factor of the returns."""
    reward_to_go: bool = True
    """Weight log pi(a_t | s_t) by G_t (True) or by the whole return R(tau) (False)."""
    baseline: Literal["none", "mean", "learned"] = "learned"
    """What is subtracted from the return: nothing, the running mean of earlier returns, or a
    learned state value V_phi(s_t)."""
    vf_coef: float = 0.5
    """Weight of the baseline network's regression loss (`baseline="learned"`)."""
    ent_coef: float = 0.0
    """Weight of an entropy bonus (0: none, as in Williams's algorithm)."""
    normalize_obs: bool = False
    """Standardise observations with running statistics (kept in checkpoints, used to evaluate)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy (and of the baseline network)."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "tanh"
    """Activation of the hidden layers."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy, in [-20, 20] (continuous actions
    only)."""
    squash: bool = False
    """Squash the Gaussian's sample with tanh into the action bounds (continuous actions only)."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        cfg.check_fields(self)
        cfg.at_least(self, 1, "num_envs")
        cfg.require(
            self.num_steps >= 0,
            f"num_steps must be at least 0 (0: the time limit), not {self.num_steps:,}",
        )
        cfg.product_at_most(
            self,
            ("num_envs", "num_steps"),
            cfg.INT32_MAX,
            "bellman counts steps in 32-bit integers",
        )
        cfg.positive(self, "learning_rate")
        cfg.within(self, 0, 1, "gamma")
        cfg.at_least(self, 0, "vf_coef", "ent_coef")
        policies.validate(self)


Config = ReinforceConfig
DEFAULT_STEPS = 1_000_000


def check_env(config: ReinforceConfig, spec: EnvSpec) -> None:
    """Raise EnvError if REINFORCE cannot act in the env or cannot tell how long a rollout is."""
    policies.check_env("reinforce", config, spec)
    if config.num_steps == 0 and spec.max_episode_steps is None:
        raise EnvError(
            f"'{spec.id}' has no time limit, so reinforce cannot size its rollouts to whole "
            "episodes; pass --num-steps N (episodes are cut after N steps)"
        )


def fit_to_env(config: ReinforceConfig, spec: EnvSpec) -> ReinforceConfig:
    """`num_steps=0` becomes the env's time limit."""
    if config.num_steps == 0 and spec.max_episode_steps is not None:
        return dataclasses.replace(config, num_steps=spec.max_episode_steps)
    return config


class PolicyInfo(struct.PyTreeNode):
    """REINFORCE keeps nothing from acting: it learns from the rollout with the same parameters."""


class ReinforceState(struct.PyTreeNode):
    params: dict[str, Any]
    """`actor`, `critic` (the learned baseline, unused otherwise) and `log_std` for Box actions."""
    opt_state: optax.OptState
    obs_stats: normalization.RunningMeanStd
    return_mean: jax.Array
    """The mean of every Psi target of earlier updates (`baseline="mean"`)."""
    return_count: jax.Array
    updates: jax.Array
    total_updates: int = struct.field(pytree_node=False)


def _optimizer() -> optax.GradientTransformation:
    return optax.scale_by_adam()


def init(
    key: jax.Array, config: ReinforceConfig, spec: EnvSpec, total_updates: int
) -> ReinforceState:
    """Fresh networks, optimiser and statistics for one seed."""
    params = policies.init(key, config, spec)
    return ReinforceState(
        params=params,
        opt_state=_optimizer().init(ravel_pytree(params)[0]),
        obs_stats=normalization.RunningMeanStd.create(spec.obs_shape),
        return_mean=jnp.zeros((), jnp.float32),
        return_count=jnp.zeros((), jnp.float32),
        updates=jnp.zeros((), jnp.int32),
        total_updates=total_updates,
    )


def act(
    config: ReinforceConfig, spec: EnvSpec, state: ReinforceState, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, PolicyInfo]:
    """Sample a_t ~ pi_theta(. | s_t) for a batch of observations."""
    x = policies.features(config, spec, state.obs_stats, obs)
    return policies.policy(config, spec, state.params, x).sample(key), PolicyInfo()


def greedy(
    config: ReinforceConfig, spec: EnvSpec, state: ReinforceState, obs: jax.Array
) -> jax.Array:
    """The deterministic policy used for evaluation: the distribution's mode."""
    x = policies.features(config, spec, state.obs_stats, obs)
    return policies.policy(config, spec, state.params, x).mode()


def returns(config: ReinforceConfig, rollout: Rollout) -> jax.Array:
    """The Monte-Carlo return Psi_t before the baseline, `[T, B]`: G_t, or R(tau) = G_0 at every
    step with `reward_to_go=False` (every env starts its episode at t = 0). Nothing is
    bootstrapped: a time limit, or the rollout's end, ends the sum."""
    g = discounted_returns(
        rollout.reward,
        jnp.zeros_like(rollout.reward),
        rollout.terminated,
        rollout.truncated,
        config.gamma,
    )
    return g if config.reward_to_go else jnp.broadcast_to(g[0], g.shape)


def loss(
    params: dict[str, Any],
    config: ReinforceConfig,
    spec: EnvSpec,
    x: jax.Array,
    action: jax.Array,
    psi: jax.Array,
    mask: jax.Array,
    baseline: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-(J_hat + c_e H) + c_v L^V on a rollout `[T, B]` (B = m episodes).

    J_hat = 1/m sum_i sum_t log pi_theta(a_t | s_t) (Psi_t - b_t) over the masked steps, with
    Psi and the fixed baseline `baseline` held constant, so that grad J_hat is the estimator;
    with `baseline="learned"` the baseline is V_phi(s_t) itself, also held constant in J_hat,
    and V_phi is fitted by L^V = mean over steps of (V_phi(s_t) - Psi_t)^2.
    """
    episodes = x.shape[1]
    steps = jnp.maximum(mask.sum(), 1.0)
    dist = policies.policy(config, spec, params, x)
    log_prob = dist.log_prob(action)
    metrics: dict[str, jax.Array] = {}
    if config.baseline == "learned":
        v = policies.value(config, spec, params, x)
        advantage = psi - jax.lax.stop_gradient(v)
        value_loss = jnp.sum(mask * (v - psi) ** 2) / steps
        metrics["value_loss"] = value_loss
    else:
        advantage = psi - baseline
        value_loss = jnp.zeros(())
    policy_loss = -jnp.sum(mask * log_prob * advantage) / episodes
    entropy = jnp.sum(mask * dist.entropy()) / steps
    total = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    metrics |= {
        "policy_loss": policy_loss,
        "entropy": entropy,
        "advantage_std": jnp.sqrt(
            jnp.sum(mask * (advantage - jnp.sum(mask * advantage) / steps) ** 2) / steps
        ),
    }
    return total, metrics


def learn(
    config: ReinforceConfig,
    spec: EnvSpec,
    state: ReinforceState,
    rollout: Rollout,
    key: jax.Array,
) -> tuple[ReinforceState, dict[str, jax.Array]]:
    """One policy-gradient step from m episodes `[T, m]` of the current policy."""
    x = policies.features(config, spec, state.obs_stats, rollout.obs)
    done = jnp.logical_or(rollout.terminated, rollout.truncated)
    mask = first_episode(done).astype(jnp.float32)
    psi = returns(config, rollout)
    # the running mean of earlier returns: independent of this batch's actions, so unbiased
    baseline = state.return_mean if config.baseline == "mean" else jnp.zeros(())

    flat_params, unravel = ravel_pytree(state.params)
    objective = lambda p: loss(unravel(p), config, spec, x, rollout.action, psi, mask, baseline)
    grads, metrics = jax.grad(objective, has_aux=True)(flat_params)
    direction, opt_state = _optimizer().update(grads, state.opt_state, flat_params)
    fraction_left = 1.0 - state.updates / state.total_updates
    learning_rate = config.learning_rate * (fraction_left if config.anneal_lr else 1.0)
    params = unravel(flat_params - learning_rate * direction)

    steps = mask.sum()
    count = state.return_count + steps
    return_mean = state.return_mean + (jnp.sum(mask * psi) - steps * state.return_mean) / count
    metrics["grad_norm"] = jnp.sqrt(jnp.sum(grads**2))
    metrics["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    metrics["episode_steps"] = steps
    obs_stats = state.obs_stats
    if config.normalize_obs:
        obs_stats = normalization.update(obs_stats, rollout.obs)
    new_state = state.replace(
        params=params,
        opt_state=opt_state,
        obs_stats=obs_stats,
        return_mean=return_mean,
        return_count=count,
        updates=state.updates + 1,
    )
    return new_state, metrics
