"""Proximal Policy Optimization with the clipped surrogate objective (Schulman et al., 2017).

The paper's Algorithm 1, as the on-policy runners drive it:

    for iteration = 1, 2, ...:
        run pi_old in N environments for T steps            -> runner, calling `act`
        compute advantage estimates A_1..A_T (GAE)          -> `learn`, line 3
        optimise L^CLIP + c1 L^VF + c2 S for K epochs       -> `learn`, line 4, and `loss`
          with minibatch size M <= N T
        theta_old <- theta                                  -> the next rollout uses the new state

Discrete actions use a categorical policy; continuous actions a diagonal Gaussian with a learned,
state-independent log standard deviation (actions are clipped to the env's bounds when sent to the
env, and the unclipped sample is what is learned from).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from bellman import config as cfg
from bellman.distributions import Categorical, DiagGaussian
from bellman.envs.spaces import Box, Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import ACTIVATIONS, MLP, obs_features
from bellman.ops import normalization
from bellman.ops.returns import generalized_advantage_estimation
from bellman.rollout import Rollout


@dataclass(frozen=True)
class PPOConfig:
    """PPO's settings; the defaults are the CartPole settings of the PPO implementation studies."""

    num_envs: int = 4
    """Parallel environments per seed (N in the paper)."""
    num_steps: int = 128
    """Steps per environment in each rollout (T)."""
    num_epochs: int = 4
    """Passes over each rollout (K)."""
    num_minibatches: int = 4
    """Minibatches per epoch; must divide num_envs * num_steps."""
    learning_rate: float = 2.5e-4
    """Adam step size at the start of training."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over training."""
    adam_eps: float = 1e-5
    """Adam's epsilon."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda: 0 is the one-step TD error, 1 the Monte-Carlo return."""
    clip_eps: float = 0.2
    """Clip range epsilon of the probability ratio in L^CLIP."""
    ent_coef: float = 0.01
    """Weight c2 of the entropy bonus S."""
    vf_coef: float = 0.5
    """Weight c1 of the value loss L^VF = (V(s) - V_target)^2."""
    max_grad_norm: float = 0.5
    """Rescale each gradient so that its global norm (over all parameters) is at most this."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    clip_value_loss: bool = True
    """Clip the value update around the rollout's values (OpenAI Baselines; not in the paper):
    L^VF = max((V - V_targ)^2, (V_old + clip(V - V_old, -eps, eps) - V_targ)^2)."""
    normalize_obs: bool = False
    """Standardise observations with running statistics (kept in checkpoints, used to evaluate)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor and of the critic (separate networks)."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "tanh"
    """Activation of the hidden layers."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions only)."""

    @property
    def batch_size(self) -> int:
        """Transitions per rollout, N T."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def validate(self) -> None:
        """Raise ConfigError for a setting out of range or inconsistent with another."""
        for name in ("num_envs", "num_steps", "num_epochs", "num_minibatches"):
            cfg.require(getattr(self, name) >= 1, f"{name} must be at least 1")
        cfg.require(
            self.batch_size % self.num_minibatches == 0,
            f"num_minibatches ({self.num_minibatches}) must divide the rollout's "
            f"num_envs * num_steps = {self.batch_size} transitions",
        )
        cfg.require(self.learning_rate > 0, "learning_rate must be positive")
        cfg.require(self.adam_eps > 0, "adam_eps must be positive")
        cfg.require(0 <= self.gamma <= 1, "gamma must lie in [0, 1]")
        cfg.require(0 <= self.gae_lambda <= 1, "gae_lambda must lie in [0, 1]")
        cfg.require(self.clip_eps > 0, "clip_eps must be positive")
        cfg.require(self.ent_coef >= 0, "ent_coef must not be negative")
        cfg.require(self.vf_coef >= 0, "vf_coef must not be negative")
        cfg.require(self.max_grad_norm > 0, "max_grad_norm must be positive")
        cfg.require(
            len(self.hidden_sizes) > 0 and all(h >= 1 for h in self.hidden_sizes),
            "hidden_sizes must be one or more positive widths",
        )
        cfg.require(self.activation in ACTIVATIONS, f"unknown activation '{self.activation}'")


Config = PPOConfig
DEFAULT_STEPS = 500_000


def check_env(config: PPOConfig, spec: EnvSpec) -> None:
    """Raise EnvError if PPO cannot act in the env."""
    if not isinstance(spec.action_space, Discrete | Box):
        raise EnvError(
            f"ppo cannot handle the action space {describe(spec.action_space)} of "
            f"'{spec.id}'; it handles Discrete and Box actions"
        )
    if config.normalize_obs and spec.num_states is not None:
        raise EnvError(
            f"--normalize-obs does not apply to '{spec.id}': its observations are state indices "
            "(the networks see them one-hot)"
        )


class PolicyInfo(struct.PyTreeNode):
    """What the rollout keeps from acting: log pi_old(a_t | s_t), for the probability ratio."""

    log_prob: jax.Array


class PPOState(struct.PyTreeNode):
    params: dict[str, Any]
    """`actor`, `critic` network parameters, and `log_std` for continuous actions."""
    opt_state: optax.OptState
    """Adam's moments, over the parameters raveled into one vector."""
    obs_stats: normalization.RunningMeanStd
    updates: jax.Array
    """Updates (rollouts learned from) so far."""
    total_updates: int = struct.field(pytree_node=False)
    """Updates in the whole run, the horizon of the learning-rate decay."""


class Batch(struct.PyTreeNode):
    """Flattened rollout, `[N]` leading axis, with the targets computed in `learn`."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


def _networks(config: PPOConfig, spec: EnvSpec) -> tuple[MLP, MLP]:
    space = spec.action_space
    assert isinstance(space, Discrete | Box)
    out = space.n if isinstance(space, Discrete) else space.size
    actor = MLP(config.hidden_sizes, out, config.activation, out_scale=0.01)
    critic = MLP(config.hidden_sizes, 1, config.activation, out_scale=1.0)
    return actor, critic


def _optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's direction; `learn` scales it by the step size.

    It works on the parameters raveled into one vector: the same update as array by array, in
    a handful of fused kernels instead of several per parameter array.
    """
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.scale_by_adam(eps=config.adam_eps)
    )


def init(key: jax.Array, config: PPOConfig, spec: EnvSpec, total_updates: int) -> PPOState:
    """Fresh networks, optimiser and observation statistics for one seed."""
    actor_key, critic_key = jax.random.split(key)
    actor, critic = _networks(config, spec)
    dummy = jnp.zeros((1, *spec.obs_shape), spec.obs_dtype)
    features = obs_features(dummy, spec)
    params: dict[str, Any] = {
        "actor": actor.init(actor_key, features),
        "critic": critic.init(critic_key, features),
    }
    if isinstance(spec.action_space, Box):
        params["log_std"] = jnp.full(spec.action_space.shape, config.init_log_std, jnp.float32)
    return PPOState(
        params=params,
        opt_state=_optimizer(config).init(ravel_pytree(params)[0]),
        obs_stats=normalization.RunningMeanStd.create(spec.obs_shape),
        updates=jnp.zeros((), jnp.int32),
        total_updates=total_updates,
    )


def _features(config: PPOConfig, spec: EnvSpec, state: PPOState, obs: jax.Array) -> jax.Array:
    if config.normalize_obs:
        obs = normalization.normalize(state.obs_stats, obs)
    return obs_features(obs, spec)


def policy(
    config: PPOConfig, spec: EnvSpec, params: dict[str, Any], features: jax.Array
) -> Categorical | DiagGaussian:
    """pi_theta(. | s) for a batch of features."""
    actor, _ = _networks(config, spec)
    out = cast(jax.Array, actor.apply(params["actor"], features))
    space = spec.action_space
    if isinstance(space, Discrete):
        return Categorical(out)
    mean = out.reshape((*out.shape[:-1], *space.shape))
    return DiagGaussian(mean, jnp.broadcast_to(params["log_std"], mean.shape))


def value(
    config: PPOConfig, spec: EnvSpec, params: dict[str, Any], features: jax.Array
) -> jax.Array:
    """V_phi(s) for a batch of features."""
    _, critic = _networks(config, spec)
    return cast(jax.Array, critic.apply(params["critic"], features))[..., 0]


def act(
    config: PPOConfig, spec: EnvSpec, state: PPOState, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, PolicyInfo]:
    """Sample a_t ~ pi_old(. | s_t) for a batch of observations `[B, *obs_shape]`.

    The critic is not evaluated while acting: `learn` computes V_old for the whole rollout in
    one batched pass, with the same parameters.
    """
    features = _features(config, spec, state, obs)
    dist = policy(config, spec, state.params, features)
    action = dist.sample(key)
    return action, PolicyInfo(dist.log_prob(action))


def greedy(config: PPOConfig, spec: EnvSpec, state: PPOState, obs: jax.Array) -> jax.Array:
    """The deterministic policy used for evaluation: the distribution's mode."""
    features = _features(config, spec, state, obs)
    return policy(config, spec, state.params, features).mode()


def loss(
    params: dict[str, Any], config: PPOConfig, spec: EnvSpec, batch: Batch
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-(L^CLIP - c1 L^VF + c2 S) on a minibatch (the paper's eq. 9, to minimise)."""
    dist = policy(config, spec, params, batch.obs)
    log_ratio = dist.log_prob(batch.action) - batch.log_prob
    ratio = jnp.exp(log_ratio)
    advantage = batch.advantage
    if config.normalize_advantages:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    # L^CLIP = E[min(w A, clip(w, 1 - eps, 1 + eps) A)]  (eq. 7)
    clipped_ratio = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
    policy_loss = -jnp.mean(jnp.minimum(ratio * advantage, clipped_ratio * advantage))
    # L^VF = (V(s) - V_target)^2
    v = value(config, spec, params, batch.obs)
    value_loss = (v - batch.target) ** 2
    if config.clip_value_loss:
        v_clipped = batch.value + jnp.clip(v - batch.value, -config.clip_eps, config.clip_eps)
        value_loss = jnp.maximum(value_loss, (v_clipped - batch.target) ** 2)
    value_loss = value_loss.mean()
    entropy = dist.entropy().mean()
    total = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    metrics = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        # KL[pi_old || pi] estimated as E[(w - 1) - log w] (Schulman's k3 estimator)
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > config.clip_eps),
    }
    return total, metrics


def _minibatch_step(
    config: PPOConfig,
    spec: EnvSpec,
    unravel: Callable[[jax.Array], dict[str, Any]],
    learning_rate: jax.Array,
    carry: tuple[jax.Array, optax.OptState],
    batch: Batch,
) -> tuple[tuple[jax.Array, optax.OptState], dict[str, jax.Array]]:
    """One gradient step on the raveled parameters `carry[0]`."""
    flat_params, opt_state = carry
    objective = lambda p: loss(unravel(p), config, spec, batch)
    grads, metrics = jax.grad(objective, has_aux=True)(flat_params)
    direction, opt_state = _optimizer(config).update(grads, opt_state, flat_params)
    metrics["grad_norm"] = jnp.sqrt(jnp.sum(grads**2))
    return (flat_params - learning_rate * direction, opt_state), metrics


def learn(
    config: PPOConfig, spec: EnvSpec, state: PPOState, rollout: Rollout, key: jax.Array
) -> tuple[PPOState, dict[str, jax.Array]]:
    """One PPO iteration on a rollout `[T, B]` collected with the current parameters."""
    obs = _features(config, spec, state, rollout.obs)
    next_obs = _features(config, spec, state, rollout.next_obs)

    # line 3: advantages with GAE(lambda); V(s_{t+1}) is the value of the true next state
    v_t, v_tp1 = value(config, spec, state.params, jnp.stack([obs, next_obs]))
    advantage = generalized_advantage_estimation(
        rollout.reward,
        v_t,
        v_tp1,
        rollout.terminated,
        rollout.truncated,
        config.gamma,
        config.gae_lambda,
    )
    target = advantage + v_t
    flat = lambda x: x.reshape((config.batch_size, *x.shape[2:]))
    batch = Batch(
        obs=flat(obs),
        action=flat(rollout.action),
        log_prob=flat(rollout.policy_info.log_prob),
        value=flat(v_t),
        advantage=flat(advantage),
        target=flat(target),
    )

    # line 4: K epochs of minibatch gradient steps on the surrogate objective
    fraction_left = 1.0 - state.updates / state.total_updates
    learning_rate = config.learning_rate * (fraction_left if config.anneal_lr else jnp.ones(()))

    flat_params, unravel = ravel_pytree(state.params)

    def epoch(
        carry: tuple[jax.Array, optax.OptState], epoch_key: jax.Array
    ) -> tuple[tuple[jax.Array, optax.OptState], dict[str, jax.Array]]:
        # a uniformly random order: sort random 32-bit keys (what jax.random.permutation does
        # too, in one sort rather than its general multi-round shuffle, which compiles slower)
        order = jnp.argsort(jax.random.bits(epoch_key, (config.batch_size,)))
        shape = (config.num_minibatches, config.minibatch_size)
        minibatches = jax.tree.map(lambda x: x[order].reshape(shape + x.shape[1:]), batch)
        step = lambda c, b: _minibatch_step(config, spec, unravel, learning_rate, c, b)
        return jax.lax.scan(step, carry, minibatches)

    (flat_params, opt_state), metrics = jax.lax.scan(
        epoch, (flat_params, state.opt_state), jax.random.split(key, config.num_epochs)
    )
    params = unravel(flat_params)
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    metrics["explained_variance"] = 1.0 - jnp.var(batch.target - batch.value) / (
        jnp.var(batch.target) + 1e-8
    )

    obs_stats = state.obs_stats
    if config.normalize_obs:
        obs_stats = normalization.update(obs_stats, rollout.obs)
    new_state = state.replace(
        params=params, opt_state=opt_state, obs_stats=obs_stats, updates=state.updates + 1
    )
    return new_state, metrics
