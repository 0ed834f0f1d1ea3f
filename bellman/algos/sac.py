"""Soft Actor-Critic (Haarnoja et al., 2018a, 2018b): maximum-entropy RL with twin soft Q critics,
a tanh-squashed Gaussian actor and the temperature tuned toward a target entropy.

The algorithm, as the off-policy runners drive it:

    actor pi(a|s; theta), critics Q_1, Q_2 (phi), targets phi' = phi, alpha      -> `init`
    for each step:
        a ~ pi(.|s) (uniform before `learning_starts`); store the step in D      -> `act`
        sample a minibatch from D                                                -> runner
        a' ~ pi(.|s'); y = r + gamma (1 - terminated)
                           (min_i Q_i(s', a'; phi') - alpha log pi(a'|s'))       -> `critic_target`
        critics: a gradient step on sum_i (Q_i(s, a) - y)^2 / 2                  -> `critic_loss`
        actor: a gradient step on alpha log pi(a~|s) - min_i Q_i(s, a~),
               a~ a reparameterised tanh-Gaussian sample                         -> `actor_loss`
        alpha: a step on -log alpha (log pi(a~|s) + H_target)                  -> `temperature_loss`
        phi' <- tau phi + (1 - tau) phi'                                          -> `learn`

log pi of the squashed action carries the change-of-variables correction
-sum_i log(scale_i (1 - tanh(u_i)^2)) (`distributions.TanhGaussian`). With `autotune` off, alpha
stays fixed (the first paper's setting). A time-limit cut (truncation) still bootstraps from s'.
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
from bellman.algos import ddpg
from bellman.buffers import Batch
from bellman.contracts import ReplayLoop
from bellman.distributions import TanhGaussian
from bellman.envs import registry
from bellman.envs.spaces import EnvSpec
from bellman.nets import QEnsemble, box_affine, obs_features
from bellman.ops import losses, targets

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
"""The actor's log-std is clipped to this range (the reference implementation's bounds)."""


@dataclass(frozen=True)
class SACConfig(ReplayLoop):
    """SAC's settings; the defaults are the paper's (Haarnoja et al., 2018b, table 1): Adam at 3e-4,
    batch 256, 2 x 256 ReLU, tau 0.005, gamma 0.99, target entropy -dim(A), one gradient step
    per env step."""

    # the replay loop's settings (`ReplayLoop`, which documents them): its defaults, and 5,000
    # random steps first
    learning_starts: int = 5_000

    learning_rate: float = 3e-4
    """Adam step size of the actor, the critics and the temperature."""
    tau: float = 0.005
    """Soft target update phi' <- tau phi + (1 - tau) phi', tau in (0, 1]."""
    alpha: float = 1.0
    """The temperature alpha: its initial value, or its value throughout without `autotune`."""
    autotune: bool = True
    """Tune alpha by gradient descent toward the target entropy (Haarnoja et al., 2018b)."""
    target_entropy_scale: float = 1.0
    """The target entropy is -scale * dim(A) (the paper: scale 1)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "relu"
    """Activation of the hidden layers."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        super().validate()
        cfg.positive(self, "learning_rate")
        cfg.within(self, 0, 1, "tau", open_low=True)
        nets.check_mlp(self)
        cfg.positive(self, "alpha")


Config = SACConfig
DEFAULT_STEPS = 100_000

NOISE = None
"""No exploration-noise state: each step draws a ~ pi(.|s) afresh."""
epsilon = None
"""No exploration schedule to log."""
evaluation_action = None
"""The return a run reports is the deterministic policy's, the squashed mean (`greedy`)."""
evaluation_memory = None


def preset_for(spec: EnvSpec) -> str | None:
    """The MuJoCo preset for gymnasium's MuJoCo tasks, Pendulum's for Pendulum-v1
    (`bellman/presets/sac.toml`)."""
    if registry.is_mujoco(spec):
        return "mujoco"
    return "pendulum" if spec.id.split("-")[0] == "Pendulum" else None


def check_env(config: SACConfig, spec: EnvSpec) -> None:
    """Raise EnvError unless the actions are a bounded box (the squashing maps onto it)."""
    ddpg.check_env(cast(Any, config), spec)


class GaussianActor(nn.Module):
    """The mean and log-std of the Gaussian before squashing, each `[B, *A]`."""

    action_shape: tuple[int, ...]
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = nets.mlp(x, self.hidden_sizes, self.activation)
        size = math.prod(self.action_shape)
        shape = (*x.shape[:-1], *self.action_shape)
        mean = nn.Dense(size)(x).reshape(shape)
        log_std = jnp.clip(nn.Dense(size)(x), LOG_STD_MIN, LOG_STD_MAX).reshape(shape)
        return mean, log_std


class SACState(struct.PyTreeNode):
    actor: Any
    """theta, the actor's parameters."""
    critic: Any
    """phi, the two critics' parameters, stacked."""
    target_critic: Any
    """phi'."""
    log_alpha: jax.Array
    """log alpha, the temperature (tuned in log space, so alpha stays positive)."""
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    gradient_step: jax.Array
    """Gradient steps taken so far."""


def _actor(config: SACConfig, spec: EnvSpec) -> GaussianActor:
    return GaussianActor(spec.action_space.shape, config.hidden_sizes, config.activation)


def _critic(config: SACConfig) -> QEnsemble:
    return QEnsemble(2, config.hidden_sizes, config.activation)


def _optimizer(config: SACConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def target_entropy(config: SACConfig, spec: EnvSpec) -> float:
    """H_target = -scale * dim(A)."""
    return -config.target_entropy_scale * float(math.prod(spec.action_space.shape))


def policy(config: SACConfig, spec: EnvSpec, actor: Any, obs: jax.Array) -> TanhGaussian:
    """pi(.|s): the Gaussian squashed by tanh onto the action box."""
    out = _actor(config, spec).apply(actor, obs_features(obs, spec))
    mean, log_std = cast(tuple[jax.Array, jax.Array], out)
    scale, offset = box_affine(spec.action_space)
    return TanhGaussian(
        mean, log_std, jnp.broadcast_to(scale, mean.shape), jnp.broadcast_to(offset, mean.shape)
    )


def q_values(
    config: SACConfig, spec: EnvSpec, critic: Any, obs: jax.Array, action: jax.Array
) -> jax.Array:
    """Q_1(s, a), Q_2(s, a): `[2, B]`."""
    return cast(jax.Array, _critic(config).apply(critic, obs_features(obs, spec), action))


def init(key: jax.Array, config: SACConfig, spec: EnvSpec, total_updates: int) -> SACState:
    """A random actor and critics, targets equal to the critics, alpha at its initial value."""
    actor_key, critic_key = jax.random.split(key)
    features = obs_features(jnp.zeros((1, *spec.obs_shape), spec.obs_dtype), spec)
    actor = _actor(config, spec).init(actor_key, features)
    critic = _critic(config).init(critic_key, features, jnp.zeros((1, *spec.action_space.shape)))
    log_alpha = jnp.log(jnp.asarray(config.alpha, jnp.float32))
    opt = _optimizer(config)
    return SACState(
        actor=actor,
        critic=critic,
        target_critic=critic,
        log_alpha=log_alpha,
        actor_opt=opt.init(actor),
        critic_opt=opt.init(critic),
        alpha_opt=opt.init(log_alpha),
        gradient_step=jnp.zeros((), jnp.int32),
    )


def act(
    config: SACConfig,
    spec: EnvSpec,
    state: SACState,
    obs: jax.Array,
    key: jax.Array,
    env_step: jax.Array,
) -> jax.Array:
    """The exploration policy: a ~ pi(.|s), uniform over the box before `learning_starts`."""
    sample_key, uniform_key = jax.random.split(key)
    action = policy(config, spec, state.actor, obs).sample(sample_key)
    random = ddpg.uniform_actions(spec, uniform_key, obs.shape[0])
    return jnp.where(env_step < config.learning_starts, random, action)


def greedy(config: SACConfig, spec: EnvSpec, state: SACState, obs: jax.Array) -> jax.Array:
    """The deterministic policy evaluations use: the squashed mean, offset + scale tanh(mu(s))."""
    return policy(config, spec, state.actor, obs).mode()


def critic_target(
    config: SACConfig, spec: EnvSpec, state: SACState, batch: Batch, key: jax.Array
) -> jax.Array:
    """y = R + discount (min_i Q_i(s', a'; phi') - alpha log pi(a'|s')), a' ~ pi(.|s')."""
    next_action, next_log_prob = policy(
        config, spec, state.actor, batch.next_obs
    ).sample_and_log_prob(key)
    q_next = q_values(config, spec, state.target_critic, batch.next_obs, next_action)
    alpha = jnp.exp(state.log_alpha)
    return targets.min_q_target(batch.reward, batch.discount, q_next, -alpha * next_log_prob)


def critic_loss(
    critic: Any, config: SACConfig, spec: EnvSpec, batch: Batch, target: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """sum_i mean_j w_j (Q_i(s_j, a_j) - y_j)^2 / 2 (`ops.losses.ensemble_td_loss`), and the
    first critic's TD errors."""
    q = q_values(config, spec, critic, batch.obs, batch.action)
    loss, error = losses.ensemble_td_loss(q, target, batch.weight)
    return loss, error[0]


def actor_loss(
    actor: Any,
    config: SACConfig,
    spec: EnvSpec,
    critic: Any,
    alpha: jax.Array,
    obs: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """mean alpha log pi(a~|s) - min_i Q_i(s, a~), a~ reparameterised; and log pi(a~|s)."""
    action, log_prob = policy(config, spec, actor, obs).sample_and_log_prob(key)
    q = jnp.min(q_values(config, spec, critic, obs, action), axis=0)
    return jnp.mean(alpha * log_prob - q), log_prob


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, entropy_target: float) -> jax.Array:
    """-log alpha * mean(log pi + H_target): alpha grows while the policy's entropy -log pi is
    below the target, shrinks while it is above."""
    return -log_alpha * jnp.mean(jax.lax.stop_gradient(log_prob) + entropy_target)


def learn(
    config: SACConfig, spec: EnvSpec, state: SACState, batch: Batch, key: jax.Array
) -> tuple[SACState, dict[str, jax.Array], jax.Array]:
    """One gradient step of the critics, then of the actor (on the updated critics), then of the
    temperature; then the soft target update."""
    opt = _optimizer(config)
    target_key, actor_key = jax.random.split(key)
    alpha = jnp.exp(state.log_alpha)

    target = jax.lax.stop_gradient(critic_target(config, spec, state, batch, target_key))
    (c_loss, error), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic, config, spec, batch, target
    )
    c_updates, critic_opt = opt.update(c_grads, state.critic_opt, state.critic)
    critic = optax.apply_updates(state.critic, c_updates)

    (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor, config, spec, critic, alpha, batch.obs, actor_key
    )
    a_updates, actor_opt = opt.update(a_grads, state.actor_opt, state.actor)
    actor = optax.apply_updates(state.actor, a_updates)

    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    entropy_target = target_entropy(config, spec)
    t_loss = temperature_loss(log_alpha, log_prob, entropy_target)
    if config.autotune:
        t_grad = jax.grad(temperature_loss)(log_alpha, log_prob, entropy_target)
        t_update, alpha_opt = opt.update(t_grad, alpha_opt, log_alpha)
        log_alpha = optax.apply_updates(log_alpha, t_update)

    metrics = {
        "critic_loss": c_loss,
        "actor_loss": a_loss,
        "alpha": alpha,
        "alpha_loss": t_loss,
        "entropy": -jnp.mean(log_prob),
        "q": jnp.mean(target),
        "td_abs": jnp.mean(jnp.abs(error)),
    }
    new_state = SACState(
        actor=actor,
        critic=critic,
        target_critic=targets.polyak_update(critic, state.target_critic, config.tau),
        log_alpha=log_alpha,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        alpha_opt=alpha_opt,
        gradient_step=state.gradient_step + 1,
    )
    return new_state, metrics, error
