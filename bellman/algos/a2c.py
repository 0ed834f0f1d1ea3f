"""Advantage actor-critic, synchronous (A2C: the A3C algorithm of Mnih et al., 2016, with its
parallel actors stepped in lockstep and one gradient step per batch).

The lectures' batch actor-critic, as the on-policy runners drive it:

    repeat:
      1. sample N n transitions (s_t, a_t, r_t, s_t+1): N envs, n steps     -> runner, `act`
      2. A(s_t, a_t) = G_t^(n) - V_phi(s_t), with the n-step return         -> `learn`
           G_t^(n) = r_t + gamma r_t+1 + ... + gamma^(n-1) V_phi(s_t+n)
           (or GAE(lambda) with gae_lambda < 1)
      3. grad J ~ 1/m sum grad log pi_theta(a_t | s_t) A(s_t, a_t)          -> `loss`
         fit V_phi to G_t^(n): L^V = 1/m sum (V_phi(s_t) - G_t^(n))^2      -> `loss`
      4. theta <- theta + alpha grad J;  phi <- phi - alpha grad L^V       -> `learn`

Here n counts back from the rollout's end: the last step's target bootstraps after one step, the
first after n (OpenAI Baselines' A2C, what "n-step" means there); with `gae_lambda` = 1 the
advantage is exactly that n-step TD error sum, since GAE(gamma, 1) telescopes to it.
"""

from __future__ import annotations

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
from bellman.ops import normalization
from bellman.ops.returns import generalized_advantage_estimation
from bellman.rollout import Rollout


@dataclass(frozen=True)
class A2CConfig:
    """A2C's settings; the defaults are OpenAI Baselines' A2C (RMSProp 7e-4, 5 steps, entropy
    bonus 0.01) with 8 envs, RL Zoo's CartPole setting."""

    num_envs: int = 8
    """Parallel environments per seed (the synchronous actors)."""
    num_steps: int = 5
    """Steps per environment in each rollout: the n of the n-step return."""
    learning_rate: float = 7e-4
    """Step size alpha at the start of training."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over training."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """RMSProp (decay 0.99, epsilon 1e-5 outside the root, as in Baselines) or Adam."""
    rms_decay: float = 0.99
    """RMSProp's decay of the mean squared gradient, in (0, 1)."""
    optimizer_eps: float = 1e-5
    """RMSProp's or Adam's epsilon."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """1: the n-step advantage; below 1, GAE(lambda) within the rollout."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus (Baselines' 0.01; Stable-Baselines3 uses 0)."""
    vf_coef: float = 0.5
    """Weight of the critic's regression loss."""
    max_grad_norm: float = 0.5
    """Rescale each gradient so that its global norm is at most this."""
    normalize_advantages: bool = False
    """Standardise the advantages of each batch."""
    normalize_obs: bool = False
    """Standardise observations with running statistics (kept in checkpoints, used to evaluate)."""
    normalize_reward: bool = False
    """Divide rewards by the running standard deviation of the discounted return."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor and of the critic (separate networks)."""
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
        cfg.at_least(self, 1, "num_envs", "num_steps")
        cfg.product_at_most(
            self,
            ("num_envs", "num_steps"),
            cfg.INT32_MAX,
            "bellman counts steps in 32-bit integers",
        )
        cfg.positive(self, "learning_rate", "optimizer_eps", "max_grad_norm")
        cfg.require(0 < self.rms_decay < 1, f"rms_decay must lie in (0, 1), not {self.rms_decay!r}")
        cfg.within(self, 0, 1, "gamma", "gae_lambda")
        cfg.at_least(self, 0, "ent_coef", "vf_coef")
        policies.validate(self)


Config = A2CConfig
DEFAULT_STEPS = 500_000
EPISODIC = False
"""Rollouts run on across episodes, the envs resetting themselves."""
evaluation_action = None
"""The return a run reports is the greedy policy's, the distribution's mode (`greedy`)."""
evaluation_memory = None


def check_env(config: A2CConfig, spec: EnvSpec) -> None:
    """Raise EnvError if A2C cannot act in the env."""
    policies.check_env("a2c", config, spec)


class PolicyInfo(struct.PyTreeNode):
    """A2C keeps nothing from acting: it learns from the rollout with the same parameters."""


class A2CState(struct.PyTreeNode):
    params: dict[str, Any]
    """`actor`, `critic` network parameters, and `log_std` for continuous actions."""
    opt_state: optax.OptState
    obs_stats: normalization.RunningMeanStd
    reward_scaler: normalization.RewardScaler
    updates: jax.Array
    total_updates: int = struct.field(pytree_node=False)


def _optimizer(config: A2CConfig) -> optax.GradientTransformation:
    """Global-norm clipping then the optimiser's direction; `learn` scales it by the step size."""
    if config.optimizer == "adam":
        direction = optax.scale_by_adam(eps=config.optimizer_eps)
    else:
        direction = optax.scale_by_rms(
            decay=config.rms_decay, eps=config.optimizer_eps, eps_in_sqrt=False
        )
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), direction)


def init(key: jax.Array, config: A2CConfig, spec: EnvSpec, total_updates: int) -> A2CState:
    """Fresh networks, optimiser and normalisation statistics for one seed."""
    params = policies.init(key, config, spec)
    return A2CState(
        params=params,
        opt_state=_optimizer(config).init(ravel_pytree(params)[0]),
        obs_stats=normalization.RunningMeanStd.create(spec.obs_shape),
        reward_scaler=normalization.RewardScaler.create(config.num_envs),
        updates=jnp.zeros((), jnp.int32),
        total_updates=total_updates,
    )


def act(
    config: A2CConfig, spec: EnvSpec, state: A2CState, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, PolicyInfo]:
    """Sample a_t ~ pi_theta(. | s_t) for a batch of observations."""
    x = policies.features(config, spec, state.obs_stats, obs)
    return policies.policy(config, spec, state.params, x).sample(key), PolicyInfo()


def greedy(config: A2CConfig, spec: EnvSpec, state: A2CState, obs: jax.Array) -> jax.Array:
    """The deterministic policy used for evaluation: the distribution's mode."""
    x = policies.features(config, spec, state.obs_stats, obs)
    return policies.policy(config, spec, state.params, x).mode()


def loss(
    params: dict[str, Any],
    config: A2CConfig,
    spec: EnvSpec,
    x: jax.Array,
    action: jax.Array,
    advantage: jax.Array,
    target: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-(J_hat - c_v L^V + c_e H) on the batch: its gradient is the actor-critic update.

    J_hat = 1/m sum log pi_theta(a|s) A, with A held fixed, so grad J_hat is the policy gradient
    estimate; L^V = 1/m sum (V_phi(s) - G^(n))^2 with the target held fixed.
    """
    dist = policies.policy(config, spec, params, x)
    policy_loss = -jnp.mean(dist.log_prob(action) * advantage)
    value_loss = jnp.mean((policies.value(config, spec, params, x) - target) ** 2)
    entropy = dist.entropy().mean()
    total = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def estimate(
    config: A2CConfig, spec: EnvSpec, state: A2CState, rollout: Rollout
) -> tuple[jax.Array, jax.Array, jax.Array, normalization.RewardScaler]:
    """Line 2 on a rollout `[T, B]`: the features, the advantages A (held fixed in `loss`), the
    critic's targets G^(n) = A + V(s_t), and the reward statistics with the rollout's rewards."""
    x = policies.features(config, spec, state.obs_stats, rollout.obs)
    next_x = policies.features(config, spec, state.obs_stats, rollout.next_obs)
    reward, reward_scaler = rollout.reward, state.reward_scaler
    if config.normalize_reward:
        done = jnp.logical_or(rollout.terminated, rollout.truncated)
        reward_scaler, reward = normalization.scale_rewards(
            reward_scaler, reward, done, config.gamma
        )
    # V(s_t+1) is the value of the true next state (the final one where an episode ended)
    v_t, v_tp1 = policies.value(config, spec, state.params, jnp.stack([x, next_x]))
    advantage = generalized_advantage_estimation(
        reward,
        v_t,
        v_tp1,
        rollout.terminated,
        rollout.truncated,
        config.gamma,
        config.gae_lambda,
    )
    target = advantage + v_t
    if config.normalize_advantages:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    return x, advantage, target, reward_scaler


def learn(
    config: A2CConfig, spec: EnvSpec, state: A2CState, rollout: Rollout, key: jax.Array
) -> tuple[A2CState, dict[str, jax.Array]]:
    """One synchronous update from a rollout `[T, B]` of the current policy."""
    x, advantage, target, reward_scaler = estimate(config, spec, state, rollout)

    # lines 3-4: one gradient step on actor and critic together (one optimiser, disjoint
    # parameters)
    flat_params, unravel = ravel_pytree(state.params)
    objective = lambda p: loss(unravel(p), config, spec, x, rollout.action, advantage, target)
    grads, metrics = jax.grad(objective, has_aux=True)(flat_params)
    direction, opt_state = _optimizer(config).update(grads, state.opt_state, flat_params)
    fraction_left = 1.0 - state.updates / state.total_updates
    learning_rate = config.learning_rate * (fraction_left if config.anneal_lr else 1.0)
    params = unravel(flat_params - learning_rate * direction)

    metrics["grad_norm"] = jnp.sqrt(jnp.sum(grads**2))
    metrics["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    v_t = policies.value(config, spec, state.params, x)
    metrics["explained_variance"] = 1.0 - jnp.var(target - v_t) / (jnp.var(target) + 1e-8)
    if config.normalize_reward:
        metrics["reward_scale"] = jnp.sqrt(reward_scaler.stats.var + 1e-8)

    obs_stats = state.obs_stats
    if config.normalize_obs:
        obs_stats = normalization.update(obs_stats, rollout.obs)
    new_state = state.replace(
        params=params,
        opt_state=opt_state,
        obs_stats=obs_stats,
        reward_scaler=reward_scaler,
        updates=state.updates + 1,
    )
    return new_state, metrics
