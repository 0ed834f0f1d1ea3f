"""Conservative Q-Learning (Kumar et al., 2020): Q-learning from a fixed dataset with a penalty
that pushes Q down on the actions a soft-maximum over all actions favours and up on the dataset's
actions, so that Q is low where the data has nothing to say (CQL(H), eq. 4).

Box actions, CQL(H) on SAC (the paper's gym-MuJoCo setting, appendix F), as the offline runner
drives it:

    actor pi(a|s; theta), critics Q_1, Q_2 (phi), targets phi' = phi, alpha, alpha'  -> `init`
    the dataset's feature mean and std                                               -> `prepare`
    for each update:
        sample a minibatch (s, a, r, s') from the dataset D                            -> runner
        a' ~ pi(.|s'); y = r + gamma (1 - terminated) min_i Q_i(s', a'; phi')
                       (- alpha log pi(a'|s') with `backup_entropy`)           -> `critic_target`
        N actions each from Unif(box), pi(.|s), pi(.|s'), their log-densities    -> `cql_actions`
        each critic's gap: log sum_k exp(Q_i(s, a_k) - log mu(a_k)) - Q_i(s, a)
                                                          -> `importance_sampled_logsumexp`
        critics: a gradient step on sum_i (Q_i(s, a) - y)^2 / 2 + w mean(gap_i),
                 w = cql_alpha (times alpha' with `lagrange_threshold`)          -> `critic_loss`
        actor: a gradient step on alpha log pi(a~|s) - min_i Q_i(s, a~), a~ reparameterised
               (Q replaced by log pi(a|s) for the first `bc_steps`)               -> `actor_loss`
        alpha: a step on -log alpha (log pi(a~|s) + H_target)         -> `sac.temperature_loss`
        alpha' (threshold T > 0): a step on -alpha' cql_alpha (gap - T)        -> `lagrange_loss`
        phi' <- tau phi + (1 - tau) phi'                                           -> `learn_box`

Discrete actions, CQL(H) on DQN (the paper's Atari setting, there on QR-DQN; d3rlpy's
DiscreteCQL on Double DQN):

    Q with weights theta, target theta^- = theta                                       -> `init`
    the dataset's feature mean and std                                               -> `prepare`
    for each update:
        sample a minibatch (s, a, r, s') from D                                        -> runner
        y = r + gamma (1 - terminated) Q^(s', argmax_a' Q(s', a'))
            (max_a' Q^(s', a') without `double_q`)                                 -> `td_target`
        gap = logsumexp_b Q(s, b) - Q(s, a)                                     -> `discrete_gap`
        a gradient step on mean Huber(y - Q(s, a)) + cql_alpha_discrete mean(gap)
                                                                               -> `discrete_loss`
        every C gradient steps theta^- <- theta                               -> `learn_discrete`

The Box estimator (appendix F): log int exp Q(s, a) da is estimated by importance sampling from
the mixture of Unif(box), pi(.|s) and pi(.|s'), each sample's Q less its log-density (the
uniform's -log volume, the policy's log-prob). As in the authors' code the logsumexp is of the 3N
terms, not of their mean: it exceeds the estimate by log 3N, a constant without effect on the
gradients, kept so that the authors' Lagrange thresholds carry over. Observations are
standardised by the dataset's statistics (`normalize_obs`, as `algos.bc`). `greedy` is the
squashed mean of pi or argmax_a Q. A time-limit cut (truncation) still bootstraps from s'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman import nets
from bellman.algos import bc, dqn, sac
from bellman.buffers import Batch
from bellman.contracts import DataStats, OfflineLoop
from bellman.distributions import TanhGaussian
from bellman.envs.spaces import Box, Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import QEnsemble, box_affine, obs_features
from bellman.ops import losses, targets

ALPHA_PRIME_MAX = 1e6
"""alpha', the Lagrange multiplier, is clipped to [0, ALPHA_PRIME_MAX] (the authors' bound)."""

Q_FINAL_INIT_STD = 1e-3
"""Standard deviation of the discrete Q network's initial output weights (DQN's default)."""


@dataclass(frozen=True)
class CQLConfig(OfflineLoop):
    """CQL's settings. Box actions (SAC): the paper's gym-MuJoCo ones and CORL's (Tarasov et al.,
    2023): Adam at 3e-4 for the critics and 1e-4 for the actor, batch 256, 3 x 256 ReLU, tau
    0.005, gamma 0.99, target entropy -dim(A), alpha 5, 10 sampled actions per source, no entropy
    in the backup. Discrete actions (DQN): d3rlpy's DiscreteCQL's (Double DQN, Huber loss, alpha
    1) on a 2 x 256 ReLU MLP. Each field applies to both kinds unless its help names one."""

    STATIC_FLOATS: ClassVar[tuple[str, ...]] = ("lagrange_threshold",)
    """Float settings compiled into the program: a threshold of 0 switches the Lagrange variant
    off."""

    critic_learning_rate: float = 3e-4
    """Adam step size of the critics (Box) or of the Q network (Discrete), and of alpha'."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "relu"
    """Activation of the hidden layers."""
    normalize_obs: bool = True
    """Standardise observations by the dataset's per-feature mean and std."""
    # Box actions: CQL(H) on SAC
    cql_alpha: float = 5.0
    """Box actions: weight of the conservative penalty (the paper's 5 for gym-MuJoCo without
    the Lagrange variant; CORL uses 10)."""
    cql_samples: int = 10
    """Box actions: N, the actions drawn from each of Unif(box), pi(.|s) and pi(.|s') for the
    importance-sampled logsumexp (3N in all)."""
    actor_learning_rate: float = 1e-4
    """Box actions: Adam step size of the actor and of the temperature (the paper's 1e-4; CORL
    uses 3e-5)."""
    hidden_sizes: tuple[int, ...] = (256, 256, 256)
    """Box actions: hidden layer widths of the actor and of each critic."""
    tau: float = 0.005
    """Box actions: soft target update phi' <- tau phi + (1 - tau) phi', tau in (0, 1]."""
    alpha: float = 1.0
    """Box actions: the temperature alpha, its initial value or, without `autotune`, its value
    throughout."""
    autotune: bool = True
    """Box actions: tune alpha toward the target entropy (Haarnoja et al., 2018b)."""
    target_entropy_scale: float = 1.0
    """Box actions: the target entropy is -scale * dim(A)."""
    backup_entropy: bool = False
    """Box actions: subtract alpha log pi(a'|s') in the critics' target, as SAC does (CORL's
    `backup_entropy`, off by default)."""
    lagrange_threshold: float = 0.0
    """Box actions: > 0 tunes a multiplier alpha' (the penalty's weight is cql_alpha * alpha')
    to hold the gap at this threshold (the paper's CQL-Lagrange); 0: a fixed weight. The gap
    includes log 3N, as in the authors' code (a flat Q's gap is about log 3N + log volume)."""
    bc_steps: int = 0
    """Box actions: gradient steps at the start in which the actor clones the dataset's actions
    (maximises log pi(a|s)) instead of maximising Q (CORL: 0 for gym-MuJoCo)."""
    # Discrete actions: CQL(H) on DQN
    cql_alpha_discrete: float = 1.0
    """Discrete actions: weight of the conservative penalty (d3rlpy's DiscreteCQL: 1)."""
    discrete_hidden_sizes: tuple[int, ...] = (256, 256)
    """Discrete actions: hidden layer widths of the Q network."""
    target_update_interval: int = 2_000
    """Discrete actions: gradient steps between copies of the Q network into its target."""
    double_q: bool = True
    """Discrete actions: Double DQN's target (the online network picks a', the target rates
    it), as d3rlpy's DiscreteCQL; false: max_a' Q^(s', a')."""
    loss: Literal["huber", "mse"] = "huber"
    """Discrete actions: Huber (d3rlpy's) or squared TD error."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        super().validate()
        cfg.positive(self, "critic_learning_rate", "actor_learning_rate", "alpha")
        cfg.at_least(self, 0, "cql_alpha", "cql_alpha_discrete", "lagrange_threshold", "bc_steps")
        cfg.at_least(self, 1, "cql_samples", "target_update_interval")
        cfg.within(self, 0, 1, "tau", open_low=True)
        nets.check_mlp(self)
        cfg.require(
            len(self.discrete_hidden_sizes) > 0 and all(h >= 1 for h in self.discrete_hidden_sizes),
            "discrete_hidden_sizes must be one or more positive widths",
        )


Config = CQLConfig
DEFAULT_STEPS = 1_000_000
"""Gradient steps per seed (the paper's and CORL's gym-MuJoCo runs)."""

evaluation_action = None
"""The return a run reports is `greedy`'s."""
evaluation_memory = None


def check_env(config: Any, spec: EnvSpec) -> None:
    """Raise EnvError unless the actions are Discrete or a bounded Box (the uniform samples and
    the squashed actor need its bounds)."""
    space = spec.action_space
    if not (isinstance(space, Discrete) or (isinstance(space, Box) and space.bounded)):
        raise EnvError(
            f"cql handles Discrete and bounded Box actions, not {describe(space)} of '{spec.id}'"
        )


class BoxState(struct.PyTreeNode):
    actor: Any
    """theta, the actor's parameters."""
    critic: Any
    """phi, the two critics' parameters, stacked."""
    target_critic: Any
    """phi'."""
    log_alpha: jax.Array
    """log alpha, the temperature."""
    log_alpha_prime: jax.Array
    """log alpha', the Lagrange multiplier of the penalty (0, unused, without the variant)."""
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    alpha_prime_opt: optax.OptState
    obs_mean: jax.Array
    """`[F]` the dataset's feature means (0 without `normalize_obs`)."""
    obs_std: jax.Array
    """`[F]` their standard deviations (1 without `normalize_obs`)."""
    gradient_step: jax.Array


class DiscreteState(struct.PyTreeNode):
    params: Any
    """theta, the Q network's parameters."""
    target_params: Any
    """theta^-."""
    opt: optax.OptState
    obs_mean: jax.Array
    obs_std: jax.Array
    gradient_step: jax.Array


# ----- the conservative penalty -----


def importance_sampled_logsumexp(q: jax.Array, log_density: jax.Array) -> jax.Array:
    """log sum_k exp(Q(s, a_k) - log mu(a_k)) over the last axis `[..., K]`: the importance-
    sampled estimate of log int exp Q(s, a) da from actions a_k ~ mu, plus log K."""
    return jax.nn.logsumexp(q - log_density, axis=-1)


def discrete_gap(q: jax.Array, action: jax.Array) -> jax.Array:
    """logsumexp_b Q(s, b) - Q(s, a) `[B]` for Q-values `[B, n]` and the data's actions `[B]`."""
    q_data = jnp.take_along_axis(q, action[:, None].astype(jnp.int32), axis=-1)[:, 0]
    return jax.nn.logsumexp(q, axis=-1) - q_data


# ----- Box actions: CQL(H) on SAC -----


def _flat_size(spec: EnvSpec) -> int:
    return math.prod(spec.action_space.shape)


def _actor(config: Any, spec: EnvSpec) -> sac.GaussianActor:
    return sac.GaussianActor((_flat_size(spec),), config.hidden_sizes, config.activation)


def _critic(config: Any) -> QEnsemble:
    return QEnsemble(2, config.hidden_sizes, config.activation)


def policy(config: Any, spec: EnvSpec, actor: Any, x: jax.Array) -> TanhGaussian:
    """pi(.|s) for standardised features `[B, F]`: a tanh-Gaussian over the flattened box."""
    mean, log_std = cast(tuple[jax.Array, jax.Array], _actor(config, spec).apply(actor, x))
    scale, offset = (v.reshape(-1) for v in box_affine(spec.action_space))
    return TanhGaussian(
        mean, log_std, jnp.broadcast_to(scale, mean.shape), jnp.broadcast_to(offset, mean.shape)
    )


def critic_values(config: Any, critic: Any, x: jax.Array, action: jax.Array) -> jax.Array:
    """Q_1(s, a), Q_2(s, a) `[2, B]` for features `[B, F]` and actions `[B, ...]`."""
    return cast(jax.Array, _critic(config).apply(critic, x, action))


def critic_target(
    config: Any, spec: EnvSpec, state: BoxState, next_x: jax.Array, batch: Batch, key: jax.Array
) -> jax.Array:
    """y = r + discount min_i Q_i(s', a'; phi'), a' ~ pi(.|s'); with `backup_entropy` the bonus
    -alpha log pi(a'|s') inside."""
    next_action, next_log_prob = policy(config, spec, state.actor, next_x).sample_and_log_prob(key)
    q_next = critic_values(config, state.target_critic, next_x, next_action)
    bonus = -jnp.exp(state.log_alpha) * next_log_prob if config.backup_entropy else 0.0
    return targets.min_q_target(batch.reward, batch.discount, q_next, bonus)


def cql_actions(
    config: Any, spec: EnvSpec, actor: Any, x: jax.Array, next_x: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The 3N actions `[B, 3N, A]` of the penalty's estimate, N each from Unif(box), pi(.|s) and
    pi(.|s'), and their log-densities `[B, 3N]` (constants to the critics: no gradient)."""
    uniform_key, policy_key = jax.random.split(key)
    n, batch = config.cql_samples, x.shape[0]
    space = cast(Box, spec.action_space)
    low = jnp.asarray(space.low, jnp.float32).reshape(-1)
    high = jnp.asarray(space.high, jnp.float32).reshape(-1)
    uniform = jax.random.uniform(uniform_key, (batch, n, low.size), minval=low, maxval=high)
    uniform_log_density = jnp.full((batch, n), -jnp.sum(jnp.log(high - low)))

    # one pass of the actor over s and s' together, N draws from each
    dist = policy(config, spec, actor, jnp.concatenate([x, next_x]))
    repeated = jax.tree.map(lambda v: jnp.repeat(v[:, None], n, axis=1), dist)
    sampled, log_prob = repeated.sample_and_log_prob(policy_key)
    actions = jnp.concatenate([uniform, sampled[:batch], sampled[batch:]], axis=1)
    log_density = jnp.concatenate([uniform_log_density, log_prob[:batch], log_prob[batch:]], 1)
    return jax.lax.stop_gradient(actions), jax.lax.stop_gradient(log_density)


def critic_loss(
    critic: Any,
    config: Any,
    x: jax.Array,
    action: jax.Array,
    target: jax.Array,
    samples: jax.Array,
    log_density: jax.Array,
    weight: jax.Array,
    threshold: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """sum_i [mean (Q_i(s, a) - y)^2 / 2 + weight mean(gap_i - threshold)], gap_i the
    importance-sampled logsumexp of Q_i less Q_i(s, a); and the TD part, the gaps `[2]`, the data's
    Q and the TD errors."""
    # one pass of each critic over the data's action and the 3N sampled ones: [2, B, 1 + 3N]
    batch, k = samples.shape[:2]
    every = jnp.concatenate([action[:, None], samples], axis=1).reshape((batch * (k + 1), -1))
    q = critic_values(config, critic, jnp.repeat(x, k + 1, axis=0), every).reshape((2, batch, -1))
    q_data = q[..., 0]
    td, error = losses.ensemble_td_loss(q_data, target, jnp.ones_like(target))
    logsumexp = importance_sampled_logsumexp(q[..., 1:], log_density)
    gap = jnp.mean(logsumexp - q_data, axis=-1)
    total = td + weight * jnp.sum(gap - threshold)
    return total, {"td": td, "gap": gap, "q_data": jnp.mean(q_data), "error": error[0]}


def actor_loss(
    actor: Any,
    config: Any,
    spec: EnvSpec,
    critic: Any,
    alpha: jax.Array,
    x: jax.Array,
    action: jax.Array,
    cloning: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """mean alpha log pi(a~|s) - min_i Q_i(s, a~), a~ reparameterised, or while `cloning`
    mean alpha log pi(a~|s) - log pi(a|s) for the data's actions `[B, A]`; and log pi(a~|s)."""
    dist = policy(config, spec, actor, x)
    sampled, log_prob = dist.sample_and_log_prob(key)
    objective = jnp.min(critic_values(config, critic, x, sampled), axis=0)
    if config.bc_steps > 0:
        objective = jnp.where(cloning, dist.log_prob(action), objective)
    return jnp.mean(alpha * log_prob - objective), log_prob


def lagrange_loss(
    log_alpha_prime: jax.Array, cql_alpha: jax.Array, gap: jax.Array, threshold: float
) -> jax.Array:
    """-alpha' cql_alpha mean_i(gap_i - threshold): alpha' grows while the gap is above the
    threshold, shrinks (toward 0) while it is below."""
    alpha_prime = jnp.clip(jnp.exp(log_alpha_prime), 0.0, ALPHA_PRIME_MAX)
    return -alpha_prime * cql_alpha * jnp.mean(jax.lax.stop_gradient(gap) - threshold)


def learn_box(
    config: Any, spec: EnvSpec, state: BoxState, batch: Batch, key: jax.Array
) -> tuple[BoxState, dict[str, jax.Array]]:
    """One gradient step of the critics (TD plus the penalty), then of the actor on the updated
    critics, of the temperature and (Lagrange variant) of alpha'; then the soft target update."""
    target_key, sample_key, actor_key = jax.random.split(key, 3)
    actor_opt = optax.adam(config.actor_learning_rate)
    critic_opt = optax.adam(config.critic_learning_rate)
    x, next_x = bc.features(spec, state, batch.obs), bc.features(spec, state, batch.next_obs)
    action = batch.action.reshape((batch.action.shape[0], -1))
    alpha = jnp.exp(state.log_alpha)
    lagrange = config.lagrange_threshold > 0
    alpha_prime = jnp.clip(jnp.exp(state.log_alpha_prime), 0.0, ALPHA_PRIME_MAX)
    weight = config.cql_alpha * (alpha_prime if lagrange else 1.0)

    target = jax.lax.stop_gradient(critic_target(config, spec, state, next_x, batch, target_key))
    samples, log_density = cql_actions(config, spec, state.actor, x, next_x, sample_key)
    (_, aux), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic, config, x, action, target, samples, log_density, weight,
        config.lagrange_threshold,
    )  # fmt: skip
    c_updates, c_opt_state = critic_opt.update(c_grads, state.critic_opt, state.critic)
    critic = optax.apply_updates(state.critic, c_updates)

    cloning = state.gradient_step < config.bc_steps
    (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor, config, spec, critic, alpha, x, action, cloning, actor_key
    )
    a_updates, a_opt_state = actor_opt.update(a_grads, state.actor_opt, state.actor)
    actor = optax.apply_updates(state.actor, a_updates)

    log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt
    entropy_target = sac.target_entropy(config, spec)
    t_loss = sac.temperature_loss(log_alpha, log_prob, entropy_target)
    if config.autotune:
        t_grad = jax.grad(sac.temperature_loss)(log_alpha, log_prob, entropy_target)
        t_update, alpha_opt_state = actor_opt.update(t_grad, alpha_opt_state, log_alpha)
        log_alpha = optax.apply_updates(log_alpha, t_update)

    log_alpha_prime, alpha_prime_opt_state = state.log_alpha_prime, state.alpha_prime_opt
    metrics = {}
    if lagrange:
        args = (config.cql_alpha, aux["gap"], config.lagrange_threshold)
        p_grad = jax.grad(lagrange_loss)(log_alpha_prime, *args)
        p_update, alpha_prime_opt_state = critic_opt.update(
            p_grad, alpha_prime_opt_state, log_alpha_prime
        )
        log_alpha_prime = optax.apply_updates(log_alpha_prime, p_update)
        metrics = {
            "alpha_prime": alpha_prime,
            "alpha_prime_loss": lagrange_loss(state.log_alpha_prime, *args),
        }

    metrics |= {
        "critic_loss": aux["td"],
        "cql_penalty": jnp.mean(aux["gap"]),
        "q_data": aux["q_data"],
        "q_target": jnp.mean(target),
        "td_abs": jnp.mean(jnp.abs(aux["error"])),
        "actor_loss": a_loss,
        "alpha": alpha,
        "alpha_loss": t_loss,
        "entropy": -jnp.mean(log_prob),
    }
    new_state = state.replace(
        actor=actor,
        critic=critic,
        target_critic=targets.polyak_update(critic, state.target_critic, config.tau),
        log_alpha=log_alpha,
        log_alpha_prime=log_alpha_prime,
        actor_opt=a_opt_state,
        critic_opt=c_opt_state,
        alpha_opt=alpha_opt_state,
        alpha_prime_opt=alpha_prime_opt_state,
        gradient_step=state.gradient_step + 1,
    )
    return new_state, metrics


# ----- Discrete actions: CQL(H) on DQN -----


def _network(config: Any, spec: EnvSpec) -> dqn.QNetwork:
    return dqn.QNetwork(
        num_actions=cast(Discrete, spec.action_space).n,
        torso="mlp",
        hidden_sizes=config.discrete_hidden_sizes,
        activation=config.activation,
        layer_norm=False,
        dueling=False,
        final_init_std=Q_FINAL_INIT_STD,
    )


def q_values(config: Any, spec: EnvSpec, params: Any, x: jax.Array) -> jax.Array:
    """Q(s, .) `[B, n]` for standardised features `[B, F]`."""
    return cast(jax.Array, _network(config, spec).apply(params, x))


def td_target(
    config: Any, spec: EnvSpec, state: DiscreteState, next_x: jax.Array, batch: Batch
) -> jax.Array:
    """y = r + discount Q^(s', a'), a' = argmax Q(s', .; theta) (Double DQN) or argmax Q^."""
    q_next_target = q_values(config, spec, state.target_params, next_x)
    if config.double_q:
        q_next_online = q_values(config, spec, state.params, next_x)
        return targets.double_q_target(batch.reward, batch.discount, q_next_target, q_next_online)
    return targets.q_learning_target(batch.reward, batch.discount, q_next_target)


def discrete_loss(
    params: Any,
    config: Any,
    spec: EnvSpec,
    x: jax.Array,
    action: jax.Array,
    target: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """mean L(y - Q(s, a)) + cql_alpha_discrete mean(logsumexp_b Q(s, b) - Q(s, a)), L Huber or
    squared; and the TD part, the gap, the data's Q and the TD errors."""
    q = q_values(config, spec, params, x)
    q_data = jnp.take_along_axis(q, action[:, None], axis=-1)[:, 0]
    error = target - q_data
    td = jnp.mean(losses.huber(error) if config.loss == "huber" else 0.5 * error**2)
    gap = jnp.mean(discrete_gap(q, action))
    total = td + config.cql_alpha_discrete * gap
    return total, {"td": td, "gap": gap, "q_data": jnp.mean(q_data), "error": error}


def learn_discrete(
    config: Any, spec: EnvSpec, state: DiscreteState, batch: Batch, key: jax.Array
) -> tuple[DiscreteState, dict[str, jax.Array]]:
    """One gradient step on TD plus penalty; every `target_update_interval` steps, theta^- =
    theta."""
    x, next_x = bc.features(spec, state, batch.obs), bc.features(spec, state, batch.next_obs)
    target = jax.lax.stop_gradient(td_target(config, spec, state, next_x, batch))
    grads, aux = jax.grad(discrete_loss, has_aux=True)(
        state.params, config, spec, x, batch.action, target
    )
    updates, opt = optax.adam(config.critic_learning_rate).update(grads, state.opt, state.params)
    params = optax.apply_updates(state.params, updates)
    step = state.gradient_step + 1
    due = step % config.target_update_interval == 0
    target_params = jax.tree.map(
        lambda new, old: jnp.where(due, new, old), params, state.target_params
    )
    metrics = {
        "critic_loss": aux["td"],
        "cql_penalty": aux["gap"],
        "q_data": aux["q_data"],
        "q_target": jnp.mean(target),
        "td_abs": jnp.mean(jnp.abs(aux["error"])),
    }
    new_state = state.replace(
        params=params, target_params=target_params, opt=opt, gradient_step=step
    )
    return new_state, metrics


# ----- the module's contract -----


def init(
    key: jax.Array, config: Any, spec: EnvSpec, total_updates: int
) -> BoxState | DiscreteState:
    """Random networks, targets equal to them, alpha at its initial value and alpha' at 1;
    standardisation by the identity until `prepare`."""
    x = obs_features(jnp.zeros((1, *spec.obs_shape), spec.obs_dtype), spec)
    stats = {
        "obs_mean": jnp.zeros((x.shape[-1],), jnp.float32),
        "obs_std": jnp.ones((x.shape[-1],), jnp.float32),
        "gradient_step": jnp.zeros((), jnp.int32),
    }
    critic_adam = optax.adam(config.critic_learning_rate)
    if isinstance(spec.action_space, Discrete):
        params = _network(config, spec).init(key, x)
        return DiscreteState(
            params=params, target_params=params, opt=critic_adam.init(params), **stats
        )
    actor_key, critic_key = jax.random.split(key)
    actor = _actor(config, spec).init(actor_key, x)
    critic = _critic(config).init(critic_key, x, jnp.zeros((1, _flat_size(spec))))
    log_alpha = jnp.log(jnp.asarray(config.alpha, jnp.float32))
    log_alpha_prime = jnp.zeros((), jnp.float32)
    actor_adam = optax.adam(config.actor_learning_rate)
    return BoxState(
        actor=actor,
        critic=critic,
        target_critic=critic,
        log_alpha=log_alpha,
        log_alpha_prime=log_alpha_prime,
        actor_opt=actor_adam.init(actor),
        critic_opt=critic_adam.init(critic),
        alpha_opt=actor_adam.init(log_alpha),
        alpha_prime_opt=critic_adam.init(log_alpha_prime),
        **stats,
    )


def prepare(config: Any, spec: EnvSpec, state: Any, stats: DataStats) -> Any:
    """The dataset's feature statistics, with `normalize_obs`."""
    return bc.prepare(config, spec, state, stats)


def greedy(config: Any, spec: EnvSpec, state: Any, obs: jax.Array) -> jax.Array:
    """argmax_a Q(s, a), or the squashed mean of pi(.|s), offset + scale tanh(mu(s))."""
    x = bc.features(spec, state, obs)
    if isinstance(spec.action_space, Discrete):
        return jnp.argmax(q_values(config, spec, state.params, x), axis=-1).astype(jnp.int32)
    mode = policy(config, spec, state.actor, x).mode()
    return mode.reshape((*mode.shape[:-1], *spec.action_space.shape))


def learn(
    config: Any, spec: EnvSpec, state: Any, batch: Batch, key: jax.Array
) -> tuple[Any, dict[str, jax.Array]]:
    """One gradient step on a minibatch of the dataset: `learn_discrete` or `learn_box`."""
    if isinstance(spec.action_space, Discrete):
        return learn_discrete(config, spec, state, batch, key)
    return learn_box(config, spec, state, batch, key)
