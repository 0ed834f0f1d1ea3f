"""Implicit Q-Learning (Kostrikov et al., 2022): values learned by expectile regression on the
dataset's own actions, never on an action the dataset lacks, and the policy extracted by
advantage-weighted regression.

The algorithm (the paper's Algorithm 1), as the offline runner drives it:

    policy pi(a|s; theta), V(s; psi), critics Q_1, Q_2 (phi),
    target phi' = phi                                         -> `init`
    rewards times 1000 / (max - min) of the dataset's episode returns,
    states standardised by the dataset's mean and std         -> `prepare`
    for each gradient step:
        sample a minibatch (s, a, r, s') from the dataset D   -> runner
        V: a gradient step on mean L_2^tau(Q^(s, a) - V(s)),  -> `value_loss`,
           Q^ = min_i Q_i(s, a; phi'),
           L_2^tau(u) = |tau - 1(u < 0)| u^2                  -> `expectile_loss`
        pi: a gradient step on -mean w log pi(a|s),           -> `actor_loss`,
            w = min(exp(beta (Q^(s, a) - V(s))), 100)         -> `advantage_weights`
        Q: a gradient step on sum_i (Q_i(s, a) - y)^2 / 2,    -> `critic_loss`
           y = r + gamma (1 - terminated) V(s')
        phi' <- tau phi + (1 - tau) phi'                      -> `learn`

The steps run in the order of the paper's code: V, then the policy (with the new V), then Q
(bootstrapping from the new V(s')), then the target. The policy is a Gaussian whose mean is
squashed into the action box by tanh and whose log std is a learned vector of its own (state
independent); log pi(a|s) is that Gaussian's density of the dataset's action, without a tanh
correction, and `greedy` is the mean. The policy's step size follows a cosine from its value to
0 over the run. A time-limit cut (truncation) still bootstraps from s'.
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
from bellman.algos import bc
from bellman.buffers import Batch
from bellman.contracts import DataStats, OfflineLoop
from bellman.distributions import DiagGaussian
from bellman.envs.spaces import Box, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import QEnsemble, box_affine, obs_features
from bellman.ops import losses, targets

LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
"""The policy's log std is clipped to this range (the paper's code's bounds)."""
RETURN_SCALE = 1000.0
"""With reward_scale "returns", the dataset's range of episode returns becomes this."""


@dataclass(frozen=True)
class IQLConfig(OfflineLoop):
    """IQL's settings; the defaults are the paper's for the D4RL locomotion tasks (Kostrikov et
    al., 2022, appendix B), as CORL runs them: Adam at 3e-4 (the policy's on a cosine decay),
    batch 256, 2 x 256 ReLU, expectile 0.7, beta 3, tau 0.005, gamma 0.99, rewards scaled by the
    dataset's range of returns."""

    learning_rate: float = 3e-4
    """Adam step size of V, the critics and the policy (the policy's at the start, with
    `anneal_actor_lr`)."""
    anneal_actor_lr: bool = True
    """Decay the policy's step size along a cosine to 0 over the run's gradient steps."""
    expectile: float = 0.7
    """tau of the expectile regression of V on Q, in (0, 1): 0.5 fits the mean of Q over the
    dataset's actions, values near 1 its maximum (Kostrikov et al.: 0.7 on locomotion, 0.9 on
    AntMaze)."""
    beta: float = 3.0
    """Inverse temperature of the advantage weights exp(beta (Q - V)) (Kostrikov et al.: 3 on
    locomotion, 10 on AntMaze)."""
    max_weight: float = 100.0
    """The advantage weights are clipped to at most this."""
    tau: float = 0.005
    """Soft target update phi' <- tau phi + (1 - tau) phi', tau in (0, 1]."""
    reward_scale: Literal["none", "returns"] = "returns"
    """Rewards as they are ("none"), or times 1000 / (max - min) of the dataset's episode
    returns ("returns", the paper's scaling on locomotion; 1 where all returns are equal)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy, of V and of each critic."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "relu"
    """Activation of the hidden layers."""
    normalize_obs: bool = True
    """Standardise observations by the dataset's per-feature mean and std (CORL's setting; the
    paper's code feeds them raw)."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        super().validate()
        cfg.positive(self, "learning_rate", "beta", "max_weight")
        cfg.require(
            0.0 < self.expectile < 1.0, f"expectile must lie in (0, 1), not {self.expectile!r}"
        )
        cfg.within(self, 0, 1, "tau", open_low=True)
        nets.check_mlp(self)


Config = IQLConfig
DEFAULT_STEPS = 1_000_000
"""Gradient steps per seed (the paper's 1M)."""

evaluation_action = None
"""The return a run reports is the policy's mean's (`greedy`)."""
evaluation_memory = None


def check_env(config: Any, spec: EnvSpec) -> None:
    """Raise EnvError unless the actions are a bounded box (the policy's mean is squashed into
    it)."""
    space = spec.action_space
    if not (isinstance(space, Box) and space.bounded):
        raise EnvError(
            f"iql needs a bounded Box action space, but '{spec.id}' has {describe(space)}; "
            "for finitely many actions try bc or cql"
        )


class GaussianPolicy(nn.Module):
    """The mean, offset + scale tanh(.) in the action box, and a state-independent log std,
    each `[B, size of A]` (flat)."""

    action_size: int
    hidden_sizes: Sequence[int]
    activation: str
    scale: Any
    offset: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = nets.mlp(x, self.hidden_sizes, self.activation)
        mean = self.offset + self.scale * jnp.tanh(nn.Dense(self.action_size)(x))
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))
        log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
        return mean, jnp.broadcast_to(log_std, mean.shape)


class Value(nn.Module):
    """V(s): an MLP with one output, `[B]`."""

    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nets.mlp(x, self.hidden_sizes, self.activation)
        return nn.Dense(1)(x)[..., 0]


class IQLState(struct.PyTreeNode):
    actor: Any
    """theta, the policy's parameters."""
    value: Any
    """psi, V's parameters."""
    critic: Any
    """phi, the two critics' parameters, stacked."""
    target_critic: Any
    """phi'."""
    actor_opt: optax.OptState
    value_opt: optax.OptState
    critic_opt: optax.OptState
    obs_mean: jax.Array
    """`[F]` the dataset's feature means (0 without `normalize_obs`)."""
    obs_std: jax.Array
    """`[F]` their standard deviations (1 without `normalize_obs`)."""
    reward_scale: jax.Array
    """The factor every reward is learned with (1 with reward_scale "none")."""
    gradient_step: jax.Array
    """Gradient steps taken so far."""
    total_steps: int = struct.field(pytree_node=False)
    """The run's gradient steps, the length of the policy's cosine decay."""


def _actor(config: IQLConfig, spec: EnvSpec) -> GaussianPolicy:
    scale, offset = box_affine(spec.action_space)
    size = math.prod(spec.action_space.shape)
    return GaussianPolicy(
        size, config.hidden_sizes, config.activation, scale.reshape(-1), offset.reshape(-1)
    )


def _value(config: IQLConfig) -> Value:
    return Value(config.hidden_sizes, config.activation)


def _critic(config: IQLConfig) -> QEnsemble:
    return QEnsemble(2, config.hidden_sizes, config.activation)


def actor_step_size(config: IQLConfig, total_steps: int) -> optax.Schedule:
    """The policy's step size after a count of its steps: a cosine from `learning_rate` to 0
    over `total_steps`, with `anneal_actor_lr`."""
    if not config.anneal_actor_lr:
        return optax.constant_schedule(config.learning_rate)
    return optax.cosine_decay_schedule(config.learning_rate, max(total_steps, 1))


def _optimizers(
    config: IQLConfig, total_steps: int
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """The policy's Adam (on its schedule), and that of V and of the critics."""
    return optax.adam(actor_step_size(config, total_steps)), optax.adam(config.learning_rate)


def init(key: jax.Array, config: IQLConfig, spec: EnvSpec, total_updates: int) -> IQLState:
    """A random policy, V and critics, the target equal to the critics; standardisation by the
    identity and rewards unscaled until `prepare`."""
    actor_key, value_key, critic_key = jax.random.split(key, 3)
    features = obs_features(jnp.zeros((1, *spec.obs_shape), spec.obs_dtype), spec)
    actor = _actor(config, spec).init(actor_key, features)
    value = _value(config).init(value_key, features)
    critic = _critic(config).init(critic_key, features, jnp.zeros((1, *spec.action_space.shape)))
    actor_opt, opt = _optimizers(config, total_updates)
    size = features.shape[-1]
    return IQLState(
        actor=actor,
        value=value,
        critic=critic,
        target_critic=critic,
        actor_opt=actor_opt.init(actor),
        value_opt=opt.init(value),
        critic_opt=opt.init(critic),
        obs_mean=jnp.zeros((size,), jnp.float32),
        obs_std=jnp.ones((size,), jnp.float32),
        reward_scale=jnp.ones((), jnp.float32),
        gradient_step=jnp.zeros((), jnp.int32),
        total_steps=total_updates,
    )


def reward_factor(config: IQLConfig, stats: DataStats) -> jax.Array:
    """1000 / (max - min) of the episode returns with reward_scale "returns" (1 where they are
    all equal), else 1."""
    if config.reward_scale == "none":
        return jnp.ones((), jnp.float32)
    span = stats.max_return - stats.min_return
    return jnp.where(span > 0, RETURN_SCALE / jnp.where(span > 0, span, 1.0), 1.0)


def prepare(config: IQLConfig, spec: EnvSpec, state: IQLState, stats: DataStats) -> IQLState:
    """The reward factor, and the dataset's feature statistics with `normalize_obs`."""
    state = state.replace(reward_scale=jnp.asarray(reward_factor(config, stats), jnp.float32))
    if not config.normalize_obs:
        return state
    return state.replace(obs_mean=stats.obs_mean, obs_std=stats.obs_std)


def policy(
    config: IQLConfig, spec: EnvSpec, state: IQLState, actor: Any, obs: jax.Array
) -> DiagGaussian:
    """pi(.|s): the Gaussian over flattened actions `[B, size of A]`."""
    out = _actor(config, spec).apply(actor, bc.features(spec, state, obs))
    mean, log_std = cast(tuple[jax.Array, jax.Array], out)
    return DiagGaussian(mean, log_std)


def v_values(
    config: IQLConfig, spec: EnvSpec, state: IQLState, value: Any, obs: jax.Array
) -> jax.Array:
    """V(s) `[B]`."""
    return cast(jax.Array, _value(config).apply(value, bc.features(spec, state, obs)))


def q_values(
    config: IQLConfig,
    spec: EnvSpec,
    state: IQLState,
    critic: Any,
    obs: jax.Array,
    action: jax.Array,
) -> jax.Array:
    """Q_1(s, a), Q_2(s, a): `[2, B]`."""
    x = bc.features(spec, state, obs)
    return cast(jax.Array, _critic(config).apply(critic, x, action))


def greedy(config: IQLConfig, spec: EnvSpec, state: IQLState, obs: jax.Array) -> jax.Array:
    """The policy's mean, offset + scale tanh(mu(s)), `[B, *A]`."""
    mean = policy(config, spec, state, state.actor, obs).mode()
    return mean.reshape((obs.shape[0], *spec.action_space.shape))


def expectile_loss(diff: jax.Array, tau: jax.Array | float) -> jax.Array:
    """L_2^tau(u) = |tau - 1(u < 0)| u^2, elementwise: the asymmetric squared error whose
    minimiser over a constant V of E[L(Q - V)] is the tau-expectile of Q (tau = 0.5: the mean)."""
    weight = jnp.where(diff < 0, 1.0 - tau, tau)
    return weight * diff**2


def advantage_weights(
    q: jax.Array, v: jax.Array, beta: jax.Array | float, max_weight: jax.Array | float
) -> jax.Array:
    """min(exp(beta (Q(s, a) - V(s))), max_weight), a constant to the policy's gradient."""
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(beta * (q - v)), max_weight))


def value_loss(
    value: Any,
    config: IQLConfig,
    spec: EnvSpec,
    state: IQLState,
    obs: jax.Array,
    q_target: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """mean_j L_2^tau(Q^(s_j, a_j) - V(s_j)), Q^ the target critics' minimum; and V(s) `[B]`."""
    v = v_values(config, spec, state, value, obs)
    return jnp.mean(expectile_loss(q_target - v, config.expectile)), v


def actor_loss(
    actor: Any,
    config: IQLConfig,
    spec: EnvSpec,
    state: IQLState,
    obs: jax.Array,
    action: jax.Array,
    weights: jax.Array,
) -> jax.Array:
    """-mean_j w_j log pi(a_j|s_j), the dataset's actions under the Gaussian."""
    log_prob = policy(config, spec, state, actor, obs).log_prob(action.reshape((len(weights), -1)))
    return -jnp.mean(weights * log_prob)


def critic_loss(
    critic: Any,
    config: IQLConfig,
    spec: EnvSpec,
    state: IQLState,
    batch: Batch,
    target: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """sum_i mean_j (y_j - Q_i(s_j, a_j))^2 / 2 with y = r + discount V(s')
    (`ops.losses.ensemble_td_loss`); and the critics' values `[2, B]`."""
    q = q_values(config, spec, state, critic, batch.obs, batch.action)
    loss, _ = losses.ensemble_td_loss(q, target, batch.weight)
    return loss, q


def learn(
    config: IQLConfig, spec: EnvSpec, state: IQLState, batch: Batch, key: jax.Array
) -> tuple[IQLState, dict[str, jax.Array]]:
    """One gradient step of V, of the policy, of the critics, then the soft target update."""
    actor_opt, opt = _optimizers(config, state.total_steps)

    # V: expectile regression on the target critics' minimum
    q_target = jnp.min(
        q_values(config, spec, state, state.target_critic, batch.obs, batch.action), axis=0
    )
    (v_loss, v), v_grads = jax.value_and_grad(value_loss, has_aux=True)(
        state.value, config, spec, state, batch.obs, q_target
    )
    v_updates, value_opt = opt.update(v_grads, state.value_opt, state.value)
    value = optax.apply_updates(state.value, v_updates)

    # pi: advantage-weighted regression, the advantages under the new V
    v_new = v_values(config, spec, state, value, batch.obs)
    weights = advantage_weights(q_target, v_new, config.beta, config.max_weight)
    a_loss, a_grads = jax.value_and_grad(actor_loss)(
        state.actor, config, spec, state, batch.obs, batch.action, weights
    )
    a_updates, new_actor_opt = actor_opt.update(a_grads, state.actor_opt, state.actor)
    actor = optax.apply_updates(state.actor, a_updates)

    # Q: regression on r + discount V(s') with the new V
    reward = state.reward_scale * batch.reward
    target = reward + batch.discount * v_values(config, spec, state, value, batch.next_obs)
    target = jax.lax.stop_gradient(target)
    (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic, config, spec, state, batch, target
    )
    c_updates, critic_opt = opt.update(c_grads, state.critic_opt, state.critic)
    critic = optax.apply_updates(state.critic, c_updates)

    metrics = {
        "value_loss": v_loss,
        "critic_loss": c_loss,
        "actor_loss": a_loss,
        "v": jnp.mean(v),
        "q": jnp.mean(q),
        "advantage": jnp.mean(q_target - v_new),
        "weight": jnp.mean(weights),
        "actor_lr": jnp.asarray(
            actor_step_size(config, state.total_steps)(state.gradient_step), jnp.float32
        ),
    }
    new_state = state.replace(
        actor=actor,
        value=value,
        critic=critic,
        target_critic=targets.polyak_update(critic, state.target_critic, config.tau),
        actor_opt=new_actor_opt,
        value_opt=value_opt,
        critic_opt=critic_opt,
        gradient_step=state.gradient_step + 1,
    )
    return new_state, metrics
