"""TD3+BC (Fujimoto & Gu, 2021): TD3 learning from a fixed dataset, its actor's loss the critic's
value, normalised, plus a behaviour-cloning term.

The algorithm (the paper's Algorithm 1), as the offline runner drives it:

    actor pi(s; theta), critics Q_1, Q_2 (phi), targets theta' = theta, phi' = phi  -> `init`
    states standardised by the dataset's statistics, (s - mean) / (std + 1e-3)    -> `prepare`,
                                                                                     `features`
    for each gradient step t:
        sample a minibatch (s, a, r, s') from the dataset D                         -> runner
        a' = clip(pi(s'; theta') + clip(eps, -c, c)), eps ~ N(0, sigma^2)
        y = r + gamma (1 - terminated) min_i Q_i(s', a'; phi')               -> `critic_target`
        critics: a gradient step on sum_i (Q_i(s, a) - y)^2 / 2                -> `critic_loss`
        every d-th step:
            lambda = alpha / mean |Q_1(s, pi(s))|, not differentiated          -> `bc_lambda`
            actor: a gradient step on
                -lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2           -> `actor_objective`
            theta' <- tau theta + (1 - tau) theta', phi' <- tau phi + (1 - tau) phi'
                                                                                    -> `learn`

Everything else is TD3 (`algos.ddpg` with its three corrections): the deterministic tanh actor
mapped onto the action box, the twin critics, target smoothing noise in units of the box's half
width. The squared error of the BC term is averaged over the minibatch and over the action's
dimensions, as the authors' code (`F.mse_loss`) does: alpha = 2.5 is tuned for that scale.
lambda has no bound where Q(s, pi(s)) is near 0 over a minibatch (a task whose best value is 0):
there the actor's steps jump about. A time-limit cut (truncation) still bootstraps from s'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman import nets
from bellman.algos import bc, ddpg
from bellman.buffers import Batch
from bellman.contracts import DataStats, OfflineLoop
from bellman.envs.spaces import Box, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import QEnsemble, box_affine, obs_features
from bellman.ops import losses, targets


@dataclass(frozen=True)
class TD3BCConfig(OfflineLoop):
    """TD3+BC's settings; the defaults are the paper's (Fujimoto & Gu, 2021, table 3), as CORL
    runs them on D4RL: Adam at 3e-4, batch 256, 2 x 256 ReLU, tau 0.005, gamma 0.99, target
    noise 0.2 clipped at 0.5, an actor step every 2 critic steps, alpha 2.5, standardised
    observations."""

    learning_rate: float = 3e-4
    """Adam step size of the actor and of the critics."""
    alpha: float = 2.5
    """alpha of lambda = alpha / mean |Q(s, pi(s))|: the weight of the critic's value against
    the behaviour-cloning term (0 trains behaviour cloning alone; large values tend to TD3)."""
    tau: float = 0.005
    """Soft target update theta' <- tau theta + (1 - tau) theta', tau in (0, 1]."""
    policy_delay: int = 2
    """Critic steps per actor and target update."""
    target_noise: float = 0.2
    """Std of the noise added to the target action (target policy smoothing), as a fraction of
    the action range's half width."""
    target_noise_clip: float = 0.5
    """The target noise is clipped to [-c, c] (same units)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "relu"
    """Activation of the hidden layers."""
    normalize_obs: bool = True
    """Standardise observations by the dataset's per-feature mean and std (the paper's state
    normalisation, (s - mean) / (std + 1e-3))."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        super().validate()
        cfg.positive(self, "learning_rate")
        cfg.at_least(self, 0, "alpha", "target_noise", "target_noise_clip")
        cfg.within(self, 0, 1, "tau", open_low=True)
        cfg.at_least(self, 1, "policy_delay")
        nets.check_mlp(self)


Config = TD3BCConfig
DEFAULT_STEPS = 1_000_000
"""Gradient steps per seed (the paper's 1M)."""

evaluation_action = None
"""The return a run reports is the deterministic actor's, pi(s) (`greedy`)."""
evaluation_memory = None


def check_env(config: Any, spec: EnvSpec) -> None:
    """Raise EnvError unless the actions are a bounded box (the actor's tanh maps onto it)."""
    space = spec.action_space
    if not (isinstance(space, Box) and space.bounded):
        raise EnvError(
            f"td3bc needs a bounded Box action space, but '{spec.id}' has {describe(space)}; "
            "for finitely many actions try bc or cql"
        )


class TD3BCState(struct.PyTreeNode):
    actor: Any
    """theta, the actor's parameters."""
    critic: Any
    """phi, the two critics' parameters, stacked."""
    target_actor: Any
    """theta'."""
    target_critic: Any
    """phi'."""
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    obs_mean: jax.Array
    """`[F]` the dataset's feature means (0 without `normalize_obs`)."""
    obs_std: jax.Array
    """`[F]` their standard deviations (1 without `normalize_obs`)."""
    gradient_step: jax.Array
    """Critic gradient steps taken so far (the actor steps at every `policy_delay`-th)."""


def _actor(config: TD3BCConfig, spec: EnvSpec) -> ddpg.Actor:
    scale, offset = box_affine(spec.action_space)
    shape = spec.action_space.shape
    return ddpg.Actor(shape, config.hidden_sizes, config.activation, scale, offset)


def _critic(config: TD3BCConfig) -> QEnsemble:
    return QEnsemble(2, config.hidden_sizes, config.activation)


def _optimizer(config: TD3BCConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def init(key: jax.Array, config: TD3BCConfig, spec: EnvSpec, total_updates: int) -> TD3BCState:
    """A random actor and critics, targets equal to them; standardisation by the identity until
    `prepare`."""
    actor_key, critic_key = jax.random.split(key)
    features = obs_features(jnp.zeros((1, *spec.obs_shape), spec.obs_dtype), spec)
    actor = _actor(config, spec).init(actor_key, features)
    critic = _critic(config).init(critic_key, features, jnp.zeros((1, *spec.action_space.shape)))
    opt = _optimizer(config)
    size = features.shape[-1]
    return TD3BCState(
        actor=actor,
        critic=critic,
        target_actor=actor,
        target_critic=critic,
        actor_opt=opt.init(actor),
        critic_opt=opt.init(critic),
        obs_mean=jnp.zeros((size,), jnp.float32),
        obs_std=jnp.ones((size,), jnp.float32),
        gradient_step=jnp.zeros((), jnp.int32),
    )


def prepare(config: TD3BCConfig, spec: EnvSpec, state: TD3BCState, stats: DataStats) -> TD3BCState:
    """The dataset's feature statistics, with `normalize_obs`."""
    if not config.normalize_obs:
        return state
    return state.replace(obs_mean=stats.obs_mean, obs_std=stats.obs_std)


def policy(
    config: TD3BCConfig, spec: EnvSpec, state: TD3BCState, actor: Any, obs: jax.Array
) -> jax.Array:
    """pi(s) `[B, *A]` for observations `[B, *obs_shape]`, standardised (`bc.features`)."""
    x = bc.features(spec, state, obs)
    return cast(jax.Array, _actor(config, spec).apply(actor, x))


def q_values(
    config: TD3BCConfig,
    spec: EnvSpec,
    state: TD3BCState,
    critic: Any,
    obs: jax.Array,
    action: jax.Array,
) -> jax.Array:
    """Q_1(s, a), Q_2(s, a): `[2, B]`, of standardised observations."""
    x = bc.features(spec, state, obs)
    return cast(jax.Array, _critic(config).apply(critic, x, action))


def greedy(config: TD3BCConfig, spec: EnvSpec, state: TD3BCState, obs: jax.Array) -> jax.Array:
    """The learned deterministic policy pi(s)."""
    return policy(config, spec, state, state.actor, obs)


def critic_target(
    config: TD3BCConfig, spec: EnvSpec, state: TD3BCState, batch: Batch, key: jax.Array
) -> jax.Array:
    """y = r + discount min_i Q_i(s', a'; phi'), a' = pi(s'; theta') plus clipped Gaussian
    noise, the sum clipped to the box."""
    next_action = policy(config, spec, state, state.target_actor, batch.next_obs)
    scale, _ = box_affine(spec.action_space)
    gaussian = jax.random.normal(key, next_action.shape) * config.target_noise
    smoothing = jnp.clip(gaussian, -config.target_noise_clip, config.target_noise_clip)
    next_action = ddpg.box(spec).clip(next_action + scale * smoothing)
    q_next = q_values(config, spec, state, state.target_critic, batch.next_obs, next_action)
    return targets.min_q_target(batch.reward, batch.discount, q_next)


def critic_loss(
    critic: Any,
    config: TD3BCConfig,
    spec: EnvSpec,
    state: TD3BCState,
    batch: Batch,
    target: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """sum_i mean_j (y_j - Q_i(s_j, a_j))^2 / 2 (`ops.losses.ensemble_td_loss`), and the
    critics' values of the data `[2, B]`."""
    q = q_values(config, spec, state, critic, batch.obs, batch.action)
    loss, _ = losses.ensemble_td_loss(q, target, batch.weight)
    return loss, q


def bc_lambda(alpha: jax.Array | float, q_pi: jax.Array) -> jax.Array:
    """lambda = alpha / mean_j |Q_1(s_j, pi(s_j))|, a constant to the gradient (the paper's
    normalisation of Q's scale, eq. 5)."""
    return jax.lax.stop_gradient(alpha / jnp.mean(jnp.abs(q_pi)))


def actor_objective(
    q_pi: jax.Array, pi: jax.Array, action: jax.Array, alpha: jax.Array | float
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """-lambda mean_j Q_1(s_j, pi(s_j)) + mean (pi(s) - a)^2, the squared error averaged over
    the minibatch and the action's dimensions; and (that squared error, lambda).

    Args:
        q_pi: `[B]` Q_1(s, pi(s)).
        pi: `[B, *A]` the actor's actions.
        action: `[B, *A]` the dataset's actions.
        alpha: the weight of the critic's value.
    """
    lam = bc_lambda(alpha, q_pi)
    bc_loss = jnp.mean((pi - action) ** 2)
    return -lam * jnp.mean(q_pi) + bc_loss, (bc_loss, lam)


def actor_loss(
    actor: Any,
    config: TD3BCConfig,
    spec: EnvSpec,
    state: TD3BCState,
    critic: Any,
    obs: jax.Array,
    action: jax.Array,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """`actor_objective` of the actor pi(s; theta) under the first critic."""
    pi = policy(config, spec, state, actor, obs)
    q_pi = q_values(config, spec, state, critic, obs, pi)[0]
    return actor_objective(q_pi, pi, action, config.alpha)


def learn(
    config: TD3BCConfig, spec: EnvSpec, state: TD3BCState, batch: Batch, key: jax.Array
) -> tuple[TD3BCState, dict[str, jax.Array]]:
    """One critic step; every `policy_delay`-th, an actor step (on the updated critics) and the
    soft target updates."""
    opt = _optimizer(config)
    target = jax.lax.stop_gradient(critic_target(config, spec, state, batch, key))
    (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic, config, spec, state, batch, target
    )
    c_updates, critic_opt = opt.update(c_grads, state.critic_opt, state.critic)
    critic = optax.apply_updates(state.critic, c_updates)
    step = state.gradient_step + 1

    def update_actor(_: None) -> tuple[Any, Any, Any, Any, jax.Array, jax.Array, jax.Array]:
        (a_loss, (bc_loss, lam)), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor, config, spec, state, critic, batch.obs, batch.action
        )
        a_updates, actor_opt = opt.update(a_grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, a_updates)
        target_actor = targets.polyak_update(actor, state.target_actor, config.tau)
        target_critic = targets.polyak_update(critic, state.target_critic, config.tau)
        return actor, actor_opt, target_actor, target_critic, a_loss, bc_loss, lam

    def wait(_: None) -> tuple[Any, Any, Any, Any, jax.Array, jax.Array, jax.Array]:
        # no actor step: its losses are NaN, left out of the logged averages
        nan = jnp.full((), jnp.nan, jnp.float32)
        return state.actor, state.actor_opt, state.target_actor, state.target_critic, nan, nan, nan

    actor, actor_opt, target_actor, target_critic, a_loss, bc_loss, lam = jax.lax.cond(
        step % config.policy_delay == 0, update_actor, wait, None
    )
    metrics = {
        "critic_loss": c_loss,
        "actor_loss": a_loss,
        "bc_loss": bc_loss,
        "lambda": lam,
        "q": jnp.mean(q),
    }
    new_state = state.replace(
        actor=actor,
        critic=critic,
        target_actor=target_actor,
        target_critic=target_critic,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        gradient_step=step,
    )
    return new_state, metrics
