"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016), with the three corrections of TD3
(Fujimoto et al., 2018) as options; `bellman train td3` is this module with all three on.

The robotics lecture's algorithm, as the off-policy runners drive it:

    actor mu(s; theta), critic Q(s, a; phi), targets theta' = theta, phi' = phi  -> `init`
    for each step:
        a = clip(mu(s) + noise), Gaussian or Ornstein-Uhlenbeck                  -> `act_with_noise`
        store (s, a, r, s', terminated, truncated) in D                          -> runner
        sample a minibatch from D                                                -> runner
        y = r + gamma (1 - terminated) Q(s', mu(s'; theta'); phi')               -> `critic_target`
        critic: a gradient step on (y - Q(s, a; phi))^2                          -> `critic_loss`
        actor: a step along grad_a Q(s, a; phi)|a=mu(s) grad_theta mu(s)         -> `actor_loss`
        theta' <- tau theta + (1 - tau) theta', phi' <- tau phi + (1 - tau) phi' -> `learn`

TD3 changes three lines: twin critics and the minimum of their targets (`twin_critics`), noise
on the target action, clipped (`target_noise`, `target_noise_clip`), and the actor and targets
updated only every `policy_delay` critic steps. A time-limit cut (truncation) still bootstraps
from s'. Before `learning_starts` the actions are uniform over the box, as in the TD3 paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman import nets
from bellman.buffers import Batch
from bellman.contracts import ExplorationNoise, ReplayLoop
from bellman.envs import registry
from bellman.envs.spaces import Box, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import QEnsemble, box_affine, obs_features
from bellman.ops import losses, targets


@dataclass(frozen=True)
class DDPGConfig(ReplayLoop):
    """DDPG's settings (TD3's with `twin_critics`, `policy_delay` 2 and `target_noise` 0.2); the
    defaults are the standard benchmark settings (2 x 256 ReLU, batch 256, tau 0.005), which
    learn Pendulum-v1 in 20,000 steps. The replay loop's settings are `ReplayLoop`'s, with its
    defaults."""

    STATIC_FLOATS: ClassVar[tuple[str, ...]] = ("clip_rewards", "target_noise")
    """Float settings compiled into the program: 0 switches reward clipping off, and
    a target_noise of 0 switches TD3's target smoothing off."""

    learning_rate: float = 1e-3
    """Adam step size of the critic (and of the actor unless `actor_learning_rate` is set)."""
    actor_learning_rate: float = 0.0
    """Adam step size of the actor; 0: `learning_rate` (the DDPG paper used 1e-4 and 1e-3)."""
    tau: float = 0.005
    """Soft target update theta' <- tau theta + (1 - tau) theta', tau in (0, 1]."""
    exploration_noise: float = 0.1
    """Standard deviation of the exploration noise, as a fraction of the action range's half
    width (sigma of the Ornstein-Uhlenbeck process with `noise_type ou`)."""
    noise_type: Literal["gaussian", "ou"] = "gaussian"
    """Independent Gaussian noise per step (TD3's choice), or the temporally correlated
    Ornstein-Uhlenbeck process of the DDPG paper."""
    ou_theta: float = 0.15
    """Mean reversion rate of the Ornstein-Uhlenbeck process."""
    ou_dt: float = 1e-2
    """Time step of the Ornstein-Uhlenbeck process."""
    twin_critics: bool = False
    """TD3: two critics, the target the minimum of their target values (clipped double Q)."""
    policy_delay: int = 1
    """TD3: critic steps per actor and target update (TD3: 2)."""
    target_noise: float = 0.0
    """TD3: std of the noise added to the target action (target policy smoothing; TD3: 0.2), as
    a fraction of the action range's half width."""
    target_noise_clip: float = 0.5
    """TD3: the target noise is clipped to [-c, c] (same units)."""
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
        cfg.at_least(self, 1, "policy_delay")
        cfg.at_least(
            self,
            0,
            "actor_learning_rate",
            "exploration_noise",
            "target_noise",
            "target_noise_clip",
            "ou_theta",
        )
        cfg.positive(self, "ou_dt")


Config = DDPGConfig
DEFAULT_STEPS = 100_000

TD3_DEFAULTS: dict[str, Any] = {"twin_critics": True, "policy_delay": 2, "target_noise": 0.2}
"""What turns DDPG into TD3 (the registry's `td3`)."""


def preset_for(spec: EnvSpec) -> str | None:
    """The MuJoCo preset (`bellman/presets/ddpg.toml`) for gymnasium's MuJoCo tasks; none
    otherwise."""
    return "mujoco" if registry.is_mujoco(spec) else None


def check_env(config: DDPGConfig, spec: EnvSpec) -> None:
    """Raise EnvError unless the actions are a bounded box (the actor's tanh maps onto it)."""
    space = spec.action_space
    if not (isinstance(space, Box) and space.bounded):
        raise EnvError(
            f"ddpg, td3 and sac need a bounded Box action space, but '{spec.id}' has "
            f"{describe(space)}; for finitely many actions try dqn or ppo"
        )


def box(spec: EnvSpec) -> Box:
    """The env's action box (`check_env` has made sure it is one)."""
    assert isinstance(spec.action_space, Box)
    return spec.action_space


class Actor(nn.Module):
    """mu(s; theta): an MLP whose tanh output is mapped onto the action box, `[B, *A]`."""

    action_shape: tuple[int, ...]
    hidden_sizes: Sequence[int]
    activation: str
    scale: Any
    offset: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nets.mlp(x, self.hidden_sizes, self.activation)
        y = jnp.tanh(nn.Dense(math.prod(self.action_shape))(x))
        return self.offset + self.scale * y.reshape((*y.shape[:-1], *self.action_shape))


class DDPGState(struct.PyTreeNode):
    actor: Any
    """theta, the actor's parameters."""
    critic: Any
    """phi, the critics' parameters (one or two critics, stacked)."""
    target_actor: Any
    target_critic: Any
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    gradient_step: jax.Array
    """Critic gradient steps taken so far."""


def _actor(config: DDPGConfig, spec: EnvSpec) -> Actor:
    scale, offset = box_affine(spec.action_space)
    shape = spec.action_space.shape
    return Actor(shape, config.hidden_sizes, config.activation, scale, offset)


def _critic(config: DDPGConfig) -> QEnsemble:
    return QEnsemble(2 if config.twin_critics else 1, config.hidden_sizes, config.activation)


def _optimizers(config: DDPGConfig) -> tuple[optax.GradientTransformation, ...]:
    actor_lr = jnp.where(
        config.actor_learning_rate > 0, config.actor_learning_rate, config.learning_rate
    )
    return optax.adam(actor_lr), optax.adam(config.learning_rate)


def policy(config: DDPGConfig, spec: EnvSpec, actor: Any, obs: jax.Array) -> jax.Array:
    """mu(s) for observations `[B, *obs_shape]`."""
    return cast(jax.Array, _actor(config, spec).apply(actor, obs_features(obs, spec)))


def q_values(
    config: DDPGConfig, spec: EnvSpec, critic: Any, obs: jax.Array, action: jax.Array
) -> jax.Array:
    """Q_i(s, a) of every critic, `[n, B]`."""
    return cast(jax.Array, _critic(config).apply(critic, obs_features(obs, spec), action))


def init(key: jax.Array, config: DDPGConfig, spec: EnvSpec, total_updates: int) -> DDPGState:
    """Random actor and critics, targets equal to them, and Adam's moments."""
    actor_key, critic_key = jax.random.split(key)
    obs = jnp.zeros((1, *spec.obs_shape), spec.obs_dtype)
    features = obs_features(obs, spec)
    actor = _actor(config, spec).init(actor_key, features)
    critic = _critic(config).init(critic_key, features, jnp.zeros((1, *spec.action_space.shape)))
    actor_opt, critic_opt = _optimizers(config)
    return DDPGState(
        actor=actor,
        critic=critic,
        target_actor=actor,
        target_critic=critic,
        actor_opt=actor_opt.init(actor),
        critic_opt=critic_opt.init(critic),
        gradient_step=jnp.zeros((), jnp.int32),
    )


def init_noise(config: DDPGConfig, spec: EnvSpec, num_envs: int) -> jax.Array:
    """The Ornstein-Uhlenbeck process's state of `num_envs` envs: zeros `[E, *A]`."""
    return jnp.zeros((num_envs, *spec.action_space.shape), jnp.float32)


def ou_step(config: DDPGConfig, noise: jax.Array, key: jax.Array) -> jax.Array:
    """x <- x - theta x dt + sigma sqrt(dt) N(0, 1): the process reverts to 0."""
    gaussian = jax.random.normal(key, noise.shape, noise.dtype)
    drift = -config.ou_theta * noise * config.ou_dt
    return noise + drift + config.exploration_noise * jnp.sqrt(config.ou_dt) * gaussian


def uniform_actions(spec: EnvSpec, key: jax.Array, batch: int) -> jax.Array:
    """Actions drawn uniformly from the box, `[batch, *A]`."""
    scale, offset = box_affine(spec.action_space)
    y = jax.random.uniform(key, (batch, *spec.action_space.shape), minval=-1.0, maxval=1.0)
    return offset + scale * y


def act_with_noise(
    config: DDPGConfig,
    spec: EnvSpec,
    state: DDPGState,
    obs: jax.Array,
    key: jax.Array,
    env_step: jax.Array,
    noise: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The exploration policy: clip(mu(s) + noise) (uniform actions before `learning_starts`),
    and the noise state after it."""
    noise_key, uniform_key = jax.random.split(key)
    scale, _ = box_affine(spec.action_space)
    if config.noise_type == "ou":
        noise = ou_step(config, noise, noise_key)
        perturbation = noise
    else:
        gaussian = jax.random.normal(noise_key, noise.shape, noise.dtype)
        perturbation = config.exploration_noise * gaussian
    action = box(spec).clip(policy(config, spec, state.actor, obs) + scale * perturbation)
    random = uniform_actions(spec, uniform_key, obs.shape[0])
    return jnp.where(env_step < config.learning_starts, random, action), noise


NOISE = ExplorationNoise(init=init_noise, act=act_with_noise)
"""The exploration noise's state, kept per env by the runner: the Ornstein-Uhlenbeck process's
(zeros, unused, with Gaussian noise)."""
epsilon = None
"""No exploration schedule to log."""
evaluation_action = None
"""The return a run reports is the deterministic policy's, mu(s) (`greedy`)."""
evaluation_memory = None


def act(
    config: DDPGConfig,
    spec: EnvSpec,
    state: DDPGState,
    obs: jax.Array,
    key: jax.Array,
    env_step: jax.Array,
) -> jax.Array:
    """The exploration policy with fresh (uncorrelated) noise."""
    zeros = init_noise(config, spec, obs.shape[0])
    return act_with_noise(config, spec, state, obs, key, env_step, zeros)[0]


def greedy(config: DDPGConfig, spec: EnvSpec, state: DDPGState, obs: jax.Array) -> jax.Array:
    """The learned deterministic policy mu(s)."""
    return policy(config, spec, state.actor, obs)


def critic_target(
    config: DDPGConfig, spec: EnvSpec, state: DDPGState, batch: Batch, key: jax.Array
) -> jax.Array:
    """y = R + discount min_i Q_i(s', a'; phi'), a' = mu(s'; theta') (+ TD3's clipped noise,
    the sum clipped to the box). `batch.discount` is gamma^n (1 - terminated)."""
    next_action = policy(config, spec, state.target_actor, batch.next_obs)
    if config.target_noise > 0:
        scale, _ = box_affine(spec.action_space)
        gaussian = jax.random.normal(key, next_action.shape) * config.target_noise
        smoothing = jnp.clip(gaussian, -config.target_noise_clip, config.target_noise_clip)
        next_action = box(spec).clip(next_action + scale * smoothing)
    q_next = q_values(config, spec, state.target_critic, batch.next_obs, next_action)
    return targets.min_q_target(batch.reward, batch.discount, q_next)


def critic_loss(
    critic: Any, config: DDPGConfig, spec: EnvSpec, batch: Batch, target: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """sum_i mean_j w_j (y_j - Q_i(s_j, a_j))^2 / 2 (`ops.losses.ensemble_td_loss`), and the
    first critic's TD errors."""
    q = q_values(config, spec, critic, batch.obs, batch.action)
    loss, error = losses.ensemble_td_loss(q, target, batch.weight)
    return loss, error[0]


def actor_loss(
    actor: Any, config: DDPGConfig, spec: EnvSpec, critic: Any, obs: jax.Array
) -> jax.Array:
    """-mean Q_1(s, mu(s; theta)): its gradient is -grad_a Q(s, a)|a=mu(s) grad_theta mu(s)."""
    action = policy(config, spec, actor, obs)
    return -jnp.mean(q_values(config, spec, critic, obs, action)[0])


def learn(
    config: DDPGConfig, spec: EnvSpec, state: DDPGState, batch: Batch, key: jax.Array
) -> tuple[DDPGState, dict[str, jax.Array], jax.Array]:
    """One critic step; every `policy_delay`-th, an actor step and the soft target updates."""
    actor_opt, critic_opt = _optimizers(config)
    target = jax.lax.stop_gradient(critic_target(config, spec, state, batch, key))
    (loss, error), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic, config, spec, batch, target
    )
    updates, critic_opt_state = critic_opt.update(grads, state.critic_opt, state.critic)
    critic = optax.apply_updates(state.critic, updates)
    step = state.gradient_step + 1

    def update_actor(_: None) -> tuple[Any, Any, Any, Any, jax.Array]:
        a_loss, a_grads = jax.value_and_grad(actor_loss)(
            state.actor, config, spec, critic, batch.obs
        )
        a_updates, a_opt = actor_opt.update(a_grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, a_updates)
        target_actor = targets.polyak_update(actor, state.target_actor, config.tau)
        target_critic = targets.polyak_update(critic, state.target_critic, config.tau)
        return actor, a_opt, target_actor, target_critic, a_loss

    def wait(_: None) -> tuple[Any, Any, Any, Any, jax.Array]:
        # no actor step: its loss is NaN, left out of the logged averages
        nan = jnp.full((), jnp.nan)
        return state.actor, state.actor_opt, state.target_actor, state.target_critic, nan

    if config.policy_delay == 1:
        actor, a_opt, target_actor, target_critic, a_loss = update_actor(None)
    else:
        due = step % config.policy_delay == 0
        actor, a_opt, target_actor, target_critic, a_loss = jax.lax.cond(
            due, update_actor, wait, None
        )
    metrics = {
        "critic_loss": loss,
        "actor_loss": a_loss,
        "q": jnp.mean(target),
        "td_abs": jnp.mean(jnp.abs(error)),
    }
    new_state = DDPGState(
        actor=actor,
        critic=critic,
        target_actor=target_actor,
        target_critic=target_critic,
        actor_opt=a_opt,
        critic_opt=critic_opt_state,
        gradient_step=step,
    )
    return new_state, metrics, error
