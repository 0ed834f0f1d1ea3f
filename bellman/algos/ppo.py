"""Proximal Policy Optimization (Schulman et al., 2017): the clipped surrogate objective, or the
adaptive KL penalty (`objective="kl"`).

The paper's Algorithm 1, as the on-policy runners drive it:

    for iteration = 1, 2, ...:
        run pi_old in N environments for T steps            -> runner, calling `act`
        compute advantage estimates A_1..A_T (GAE)          -> `learn`, line 3
        optimise L^CLIP + c1 L^VF + c2 S for K epochs       -> `learn`, line 4, and `loss`
          with minibatch size M <= N T
        theta_old <- theta                                  -> the next rollout uses the new state

The adaptive KL penalty (the paper's section 4) replaces L^CLIP by
L^KLPEN = E[w A - beta KL[pi_old(.|s) || pi(.|s)]] and, after each update's epochs,
    d = E[KL[pi_old || pi]];  d < d_targ / 1.5: beta <- beta / 2;  d > 1.5 d_targ: beta <- 2 beta
(`learn`, line 5, `adapt_kl_coefficient`).

The networks and action distributions are `bellman.policies`': categorical for discrete actions;
for continuous ones a diagonal Gaussian with a learned state-independent log standard deviation,
or its tanh-squashed form (`squash`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from bellman import config as cfg
from bellman import policies
from bellman.envs import registry
from bellman.envs.spaces import EnvSpec
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
    objective: Literal["clip", "kl"] = "clip"
    """The surrogate: `clip` (L^CLIP, the paper's eq. 7) or `kl` (the adaptive KL penalty)."""
    clip_eps: float = 0.2
    """Clip range epsilon of the probability ratio in L^CLIP (and of the value loss)."""
    kl_target: float = 0.01
    """d_targ of the KL penalty: beta halves below d_targ / 1.5 and doubles above 1.5 d_targ."""
    kl_beta: float = 1.0
    """The KL penalty's initial coefficient beta."""
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
    normalize_reward: bool = False
    """Divide rewards by the running standard deviation of the discounted return (learning only;
    returns are reported unscaled)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor and of the critic (separate networks)."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "tanh"
    """Activation of the hidden layers."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy, in [-20, 20] (continuous actions
    only)."""
    squash: bool = False
    """Squash the Gaussian's sample with tanh into the action bounds (continuous actions only)."""

    @property
    def batch_size(self) -> int:
        """Transitions per rollout, N T."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type, out of range or inconsistent with
        another."""
        cfg.check_fields(self)
        cfg.at_least(self, 1, "num_envs", "num_steps", "num_epochs", "num_minibatches")
        cfg.product_at_most(
            self,
            ("num_envs", "num_steps"),
            cfg.INT32_MAX,
            "bellman counts steps in 32-bit integers",
        )
        cfg.require(
            self.batch_size % self.num_minibatches == 0,
            f"num_minibatches ({self.num_minibatches}) must divide the rollout's "
            f"num_envs * num_steps = {self.batch_size} transitions",
        )
        cfg.positive(
            self, "learning_rate", "adam_eps", "clip_eps", "kl_target", "kl_beta", "max_grad_norm"
        )
        cfg.within(self, 0, 1, "gamma", "gae_lambda")
        cfg.at_least(self, 0, "ent_coef", "vf_coef")
        policies.validate(self)


Config = PPOConfig
DEFAULT_STEPS = 500_000

EPISODIC = False
"""Rollouts run on across episodes, the envs resetting themselves."""
evaluation_action = None
"""The return a run reports is the greedy policy's, the distribution's mode (`greedy`)."""
evaluation_memory = None


def preset_for(spec: EnvSpec) -> str | None:
    """The MuJoCo preset for gymnasium's MuJoCo tasks, Pendulum's for Pendulum-v1
    (`bellman/presets/ppo.toml`); none otherwise (the defaults suit CartPole)."""
    if registry.is_mujoco(spec):
        return "mujoco"
    return "pendulum" if spec.id.split("-")[0] == "Pendulum" else None


def check_env(config: PPOConfig, spec: EnvSpec) -> None:
    """Raise EnvError if PPO cannot act in the env."""
    policies.check_env("ppo", config, spec)


class PolicyInfo(struct.PyTreeNode):
    """What the rollout keeps from acting: log pi_old(a_t | s_t), for the probability ratio."""

    log_prob: jax.Array


class PPOState(struct.PyTreeNode):
    params: dict[str, Any]
    """`actor`, `critic` network parameters, and `log_std` for continuous actions."""
    opt_state: optax.OptState
    """Adam's moments, over the parameters raveled into one vector."""
    obs_stats: normalization.RunningMeanStd
    reward_scaler: normalization.RewardScaler
    kl_beta: jax.Array
    """The KL penalty's coefficient beta (adapted after every update; `objective="kl"`)."""
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
    old_policy: Any = None
    """pi_old(. | s) (a distribution pytree) for the KL penalty; None with the clipped one."""


def _optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's direction; `learn` scales it by the step size.

    It works on the parameters raveled into one vector: the same update as array by array, in
    a handful of fused kernels instead of several per parameter array.
    """
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.scale_by_adam(eps=config.adam_eps)
    )


def init(key: jax.Array, config: PPOConfig, spec: EnvSpec, total_updates: int) -> PPOState:
    """Fresh networks, optimiser and normalisation statistics for one seed."""
    params = policies.init(key, config, spec)
    return PPOState(
        params=params,
        opt_state=_optimizer(config).init(ravel_pytree(params)[0]),
        obs_stats=normalization.RunningMeanStd.create(spec.obs_shape),
        reward_scaler=normalization.RewardScaler.create(config.num_envs),
        kl_beta=jnp.asarray(config.kl_beta, jnp.float32),
        updates=jnp.zeros((), jnp.int32),
        total_updates=total_updates,
    )


def _features(config: PPOConfig, spec: EnvSpec, state: PPOState, obs: jax.Array) -> jax.Array:
    return policies.features(config, spec, state.obs_stats, obs)


policy = policies.policy
value = policies.value


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
    params: dict[str, Any],
    config: PPOConfig,
    spec: EnvSpec,
    batch: Batch,
    kl_beta: jax.Array | float = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-(L^CLIP - c1 L^VF + c2 S) on a minibatch (the paper's eq. 9, to minimise), or with
    L^KLPEN in place of L^CLIP when `objective="kl"`."""
    dist = policy(config, spec, params, batch.obs)
    log_ratio = dist.log_prob(batch.action) - batch.log_prob
    ratio = jnp.exp(log_ratio)
    advantage = batch.advantage
    if config.normalize_advantages:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    metrics: dict[str, jax.Array] = {}
    if config.objective == "kl":
        # L^KLPEN = E[w A - beta KL[pi_old(.|s) || pi(.|s)]]  (eq. 8)
        kl = batch.old_policy.kl(dist).mean()
        policy_loss = -jnp.mean(ratio * advantage) + kl_beta * kl
        metrics["kl"] = kl
    else:
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
    metrics |= {
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
    kl_beta: jax.Array,
    carry: tuple[jax.Array, optax.OptState],
    batch: Batch,
) -> tuple[tuple[jax.Array, optax.OptState], dict[str, jax.Array]]:
    """One gradient step on the raveled parameters `carry[0]`."""
    flat_params, opt_state = carry
    objective = lambda p: loss(unravel(p), config, spec, batch, kl_beta)
    grads, metrics = jax.grad(objective, has_aux=True)(flat_params)
    direction, opt_state = _optimizer(config).update(grads, opt_state, flat_params)
    metrics["grad_norm"] = jnp.sqrt(jnp.sum(grads**2))
    return (flat_params - learning_rate * direction, opt_state), metrics


def adapt_kl_coefficient(kl_beta: jax.Array, kl: jax.Array, kl_target: float) -> jax.Array:
    """The paper's rule: halve beta if d < d_targ / 1.5, double it if d > 1.5 d_targ."""
    halved = jnp.where(kl < kl_target / 1.5, kl_beta / 2.0, kl_beta)
    return jnp.where(kl > kl_target * 1.5, kl_beta * 2.0, halved)


def learn(
    config: PPOConfig, spec: EnvSpec, state: PPOState, rollout: Rollout, key: jax.Array
) -> tuple[PPOState, dict[str, jax.Array]]:
    """One PPO iteration on a rollout `[T, B]` collected with the current parameters."""
    obs = _features(config, spec, state, rollout.obs)
    next_obs = _features(config, spec, state, rollout.next_obs)
    reward, reward_scaler = rollout.reward, state.reward_scaler
    if config.normalize_reward:
        done = jnp.logical_or(rollout.terminated, rollout.truncated)
        reward_scaler, reward = normalization.scale_rewards(
            reward_scaler, reward, done, config.gamma
        )

    # line 3: advantages with GAE(lambda); V(s_{t+1}) is the value of the true next state
    v_t, v_tp1 = value(config, spec, state.params, jnp.stack([obs, next_obs]))
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
    flat = lambda x: x.reshape((config.batch_size, *x.shape[2:]))
    batch = Batch(
        obs=flat(obs),
        action=flat(rollout.action),
        log_prob=flat(rollout.policy_info.log_prob),
        value=flat(v_t),
        advantage=flat(advantage),
        target=flat(target),
    )
    if config.objective == "kl":
        batch = batch.replace(old_policy=policy(config, spec, state.params, batch.obs))

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
        step = lambda c, b: _minibatch_step(
            config, spec, unravel, learning_rate, state.kl_beta, c, b
        )
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

    # line 5 (KL penalty): d = E[KL[pi_old || pi]] over the whole rollout, then adapt beta
    kl_beta = state.kl_beta
    if config.objective == "kl":
        d = batch.old_policy.kl(policy(config, spec, params, batch.obs)).mean()
        metrics["kl_beta"] = state.kl_beta
        metrics["kl"] = d
        kl_beta = adapt_kl_coefficient(state.kl_beta, d, config.kl_target)
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
        kl_beta=kl_beta,
        updates=state.updates + 1,
    )
    return new_state, metrics
