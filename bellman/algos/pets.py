"""PETS (Chua et al., 2018): probabilistic ensembles with trajectory sampling. A learned model of
the env, an ensemble of Gaussian networks, and model predictive control through it with CEM.

The algorithm, as the off-policy runners drive it (the replay memory is the data set D):

    the ensemble's parameters, its normalisers                                 -> `init`
    for each env step:
        before `learning_starts`: a uniformly random action
        else, from s_t: CEM over action sequences a_{t:t+H}, each sequence's return
            (1/P) sum_p sum_{k<H} gamma^k r^p_{t+k}, its P particles propagated through
            the ensemble (particle p through member p mod M, TS-infinity), s^p_{k+1} ~
            N(s^p_k + mu_m, sigma_m^2), r^p_k the member's mean reward;
            warm-started from the last plan shifted by one step    -> `plan`, `NOISE.act`
        store the step in D                                                    -> runner
        gradient_steps times: sample a minibatch from D; each member a step on
            the Gaussian NLL of its bootstrap resample of it                   -> `learn`

The return is a known quantity nowhere: the model predicts the reward as well as the next
observation (`bellman.ops.dynamics`), so PETS runs on any env with vector observations and a
bounded box of actions. Each stored transition is held out from training or not by a hash of
its replay slot (`holdout` of them), and the model's loss on the held-out ones is logged. The
plans are the runner's per-env exploration state (`NOISE`), in units of the action box
[-1, 1] so that a fresh plan (all zeros) is the middle of the bounds.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman.algos import ddpg
from bellman.buffers import Batch
from bellman.contracts import EvaluationMemory, ExplorationNoise, ReplayLoop
from bellman.envs.spaces import EnvSpec
from bellman.errors import EnvError
from bellman.nets import box_affine
from bellman.ops import dynamics, planning


@dataclass(frozen=True)
class PETSConfig(ReplayLoop):
    """PETS's settings. The defaults are sized for Pendulum-v1 on a CPU: the paper's ensemble of
    5 networks with bounded log-variances, TS-infinity and CEM keeping a tenth of the population
    as elites; a smaller network (3 x 64), population (200), horizon (20), 4 iterations and one
    particle per member (each step plans through 80,000 model evaluations; the paper's sizes
    take about 60 times as many)."""

    # the replay loop's settings (`ReplayLoop`, which documents them): one random episode of
    # Pendulum first, the planning undiscounted
    learning_starts: int = 200
    buffer_size: int = 100_000
    gradient_steps: int = 2
    gamma: float = 1.0

    ensemble_size: int = 5
    """M, the networks of the ensemble."""
    hidden_sizes: tuple[int, ...] = (64, 64, 64)
    """Hidden layer widths of each network."""
    activation: Literal["silu", "relu", "tanh", "elu"] = "silu"
    """Activation of the hidden layers (PETS: swish, i.e. silu)."""
    learning_rate: float = 1e-3
    """Adam step size of the ensemble."""
    weight_decay: float = 5e-5
    """Decoupled weight decay of the ensemble's kernels (AdamW)."""
    holdout: float = 0.1
    """The share of stored transitions kept out of training, to measure the model on."""
    horizon: int = 20
    """H, the steps each plan looks ahead."""
    population: int = 200
    """Candidate action sequences per CEM iteration."""
    elites: int = 20
    """The best sequences CEM refits its Gaussian to."""
    iterations: int = 4
    """CEM iterations per env step, from the previous step's plan shifted by one (warm start)."""
    eval_iterations: int = 4
    """CEM iterations per step of the evaluated controller, warm-started from its last step's
    plan as in training (and of `greedy`, the policy of observations alone, which plans every
    step from the middle of the bounds)."""
    momentum: float = 0.1
    """The share of the old mean and standard deviation kept at each refit."""
    init_std: float = 0.5
    """CEM's standard deviation at the start of each step, a fraction of the half-range."""
    particles: int = 5
    """P, particles per candidate sequence; a multiple of ensemble_size (P / M per member; the
    paper: 20)."""

    STATIC_FLOATS = (*ReplayLoop.STATIC_FLOATS, "holdout")

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type, out of range or inconsistent."""
        super().validate()
        cfg.at_least(self, 1, "ensemble_size", "horizon", "population", "elites")
        cfg.at_least(self, 1, "iterations", "eval_iterations", "particles")
        cfg.positive(self, "learning_rate", "init_std")
        cfg.at_least(self, 0, "weight_decay")
        cfg.within(self, 0, 1, "momentum")
        cfg.within(self, 0, 0.5, "holdout")
        cfg.require(
            all(isinstance(w, int) and w >= 1 for w in self.hidden_sizes),
            f"hidden_sizes must be positive integers, got {self.hidden_sizes}",
        )
        cfg.require(
            self.elites <= self.population,
            f"elites ({self.elites}) must be at most population ({self.population})",
        )
        cfg.require(
            self.particles % self.ensemble_size == 0,
            f"particles ({self.particles}) must be a multiple of ensemble_size "
            f"({self.ensemble_size}): each member carries the same number",
        )


Config = PETSConfig
DEFAULT_STEPS = 5_000

epsilon = None
"""No exploration schedule to log."""


class Plans(struct.PyTreeNode):
    """Each env's plan: the runner's exploration state, zeroed where an episode ends."""

    mean: jax.Array
    """`[E, H, A]` the plan to warm-start the next step from (box units; zeros: fresh)."""
    planned_return: jax.Array
    """`[E]` the model's return of the last executed plan (0 before planning starts)."""


class PETSState(struct.PyTreeNode):
    model: dynamics.ModelState
    """The ensemble's parameters (`[M, ...]` per layer), its normalisers and optimiser."""
    gradient_step: jax.Array


def check_env(config: PETSConfig, spec: EnvSpec) -> None:
    """PETS models vector observations and plans bounded continuous actions."""
    ddpg.check_env(config, spec)  # type: ignore[arg-type]
    if len(spec.obs_shape) != 1:
        raise EnvError(
            f"pets models vector observations; {spec.id} observes arrays of shape {spec.obs_shape}"
        )


def _net(config: PETSConfig, spec: EnvSpec) -> dynamics.GaussianEnsemble:
    return dynamics.GaussianEnsemble(
        config.ensemble_size, spec.obs_shape[0] + 1, config.hidden_sizes, config.activation
    )


def _optimizer(config: PETSConfig) -> optax.GradientTransformation:
    return optax.adamw(config.learning_rate, weight_decay=config.weight_decay)


def init(key: jax.Array, config: PETSConfig, spec: EnvSpec, total_updates: int) -> PETSState:
    """A random ensemble and normalisers that have seen nothing."""
    obs_dim, action_dim = spec.obs_shape[0], spec.action_space.shape[0]
    model = dynamics.init_model(key, _net(config, spec), _optimizer(config), obs_dim, action_dim)
    return PETSState(model, jnp.zeros((), jnp.int32))


def learn(
    config: PETSConfig, spec: EnvSpec, state: PETSState, batch: Batch, key: jax.Array
) -> tuple[PETSState, dict[str, jax.Array], jax.Array]:
    """One AdamW step of every member on the Gaussian NLL of its bootstrap resample of the
    minibatch's training transitions; the held-out ones measure the model."""
    action = box_action(spec, batch.action)
    inputs = dynamics.inputs_of(batch.obs, action)
    targets = dynamics.targets_of(batch.obs, action, batch.next_obs, batch.reward)
    train = 1.0 - dynamics.held_out(batch.index, config.holdout).astype(jnp.float32)
    model, metrics = dynamics.learn_model(
        _net(config, spec), _optimizer(config), state.model, inputs, targets, train, key
    )
    size = batch.obs.shape[0]
    return PETSState(model, state.gradient_step + 1), metrics, jnp.zeros((size,), jnp.float32)


def box_action(spec: EnvSpec, action: jax.Array) -> jax.Array:
    """Env actions -> the box's units [-1, 1], the model's and the planner's."""
    scale, offset = box_affine(spec.action_space)
    return (action - offset) / scale


def env_action(spec: EnvSpec, y: jax.Array) -> jax.Array:
    """Actions in the box's units [-1, 1] -> the env's."""
    scale, offset = box_affine(spec.action_space)
    return offset + scale * y


def planned_return(
    config: PETSConfig,
    spec: EnvSpec,
    state: PETSState,
    obs: jax.Array,
    seqs: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """The returns `[N]` of action sequences `[N, H, A]` (box units) from the observation
    `obs`, each the mean over its P particles of sum_k gamma^k r_k through the ensemble
    (particle p through member p mod M for the whole horizon)."""
    net = _net(config, spec)
    members, per = config.ensemble_size, config.particles // config.ensemble_size
    n = seqs.shape[0]
    s = jnp.broadcast_to(obs, (members, n * per, obs.shape[-1])).astype(jnp.float32)
    actions = jnp.repeat(seqs, per, axis=0)  # [N * per, H, A]: each sequence's particles together

    def step(carry: tuple, inputs: tuple) -> tuple[tuple, None]:
        s, total, weight = carry
        a, k = inputs
        a = jnp.broadcast_to(a, (members, *a.shape))
        s, r = dynamics.sample_next(net, state.model.params, state.model.norm, s, a, k)
        return (s, total + weight * r, weight * config.gamma), None

    keys = jax.random.split(key, config.horizon)
    zero = jnp.zeros((members, n * per), jnp.float32)
    (_, total, _), _ = jax.lax.scan(
        step, (s, zero, jnp.ones((), jnp.float32)), (jnp.swapaxes(actions, 0, 1), keys)
    )
    return total.reshape(members, n, per).mean(axis=(0, 2))


def plan(
    config: PETSConfig,
    spec: EnvSpec,
    state: PETSState,
    obs: jax.Array,
    start: jax.Array,
    key: jax.Array,
) -> planning.Plan:
    """CEM from the plan `start` `[H, A]` (box units) for one observation; the same particle
    noise for every candidate (common random numbers)."""
    model_key, optimise_key = jax.random.split(key)
    objective = lambda seqs: planned_return(config, spec, state, obs, seqs, model_key)
    one = jnp.ones_like(start)
    return planning.cem(
        objective,
        start,
        config.init_std * one,
        optimise_key,
        low=-one,
        high=one,
        population=config.population,
        elites=config.elites,
        iterations=config.iterations,
        momentum=config.momentum,
    )


def _plan_all(
    config: PETSConfig,
    spec: EnvSpec,
    state: PETSState,
    obs: jax.Array,
    starts: jax.Array,
    key: jax.Array,
) -> planning.Plan:
    keys = jax.random.split(key, obs.shape[0])
    return jax.vmap(functools.partial(plan, config, spec, state))(obs, starts, keys)


def fresh_plans(config: PETSConfig, spec: EnvSpec, num_envs: int) -> Plans:
    """`[E, H, A]` plans at the middle of the bounds (zeros in box units)."""
    zeros = jnp.zeros((num_envs, config.horizon, *spec.action_space.shape), jnp.float32)
    return Plans(zeros, jnp.zeros((num_envs,), jnp.float32))


def explore(
    config: PETSConfig,
    spec: EnvSpec,
    state: PETSState,
    obs: jax.Array,
    key: jax.Array,
    env_step: jax.Array,
    plans: Plans,
) -> tuple[jax.Array, Plans]:
    """The actions of every env: uniform before `learning_starts`, else the first action of
    its plan through the model; and the plans shifted by one step, to warm-start the next."""
    uniform_key, plan_key, return_key = jax.random.split(key, 3)
    found = _plan_all(config, spec, state, obs, plans.mean, plan_key)
    random = jax.random.uniform(uniform_key, found.mean[:, 0].shape, minval=-1.0, maxval=1.0)
    starting = env_step < config.learning_starts
    y = jnp.where(starting, random, found.mean[:, 0])
    keys = jax.random.split(return_key, obs.shape[0])
    planned = jax.vmap(lambda o, seq, k: planned_return(config, spec, state, o, seq[None], k)[0])(
        obs, found.mean, keys
    )
    following = Plans(jax.vmap(planning.shift)(found.mean), planned)
    return env_action(spec, y), jax.tree.map(
        lambda old, new: jnp.where(starting, old, new), plans, following
    )


def act(
    config: PETSConfig,
    spec: EnvSpec,
    state: PETSState,
    obs: jax.Array,
    key: jax.Array,
    env_step: jax.Array,
) -> jax.Array:
    """`explore` from fresh plans (the runners call `NOISE.act`, which keeps the plans)."""
    fresh = fresh_plans(config, spec, obs.shape[0])
    return explore(config, spec, state, obs, key, env_step, fresh)[0]


NOISE = ExplorationNoise(
    init=lambda config, spec, num_envs: fresh_plans(config, spec, num_envs),
    act=explore,
    metrics=lambda plans: {"planned_return": plans.planned_return.mean()},
)
"""The runner keeps each env's plan as its exploration state and zeroes it (a fresh plan) where
an episode ends; it logs the planned return of the last executed plans."""


def plan_warm(
    config: PETSConfig,
    spec: EnvSpec,
    state: PETSState,
    obs: jax.Array,
    key: jax.Array,
    plans: Plans,
) -> tuple[jax.Array, Plans]:
    """The evaluated controller, the trained one without its random start: each episode's plan
    from its last step's, shifted by one (from the middle of the bounds at its first step),
    with `eval_iterations` of CEM; its first action in the env's units, and the plans to
    warm-start the next step from."""
    warm = dataclasses.replace(config, iterations=config.eval_iterations)
    found = _plan_all(warm, spec, state, obs, plans.mean, key)
    return env_action(spec, found.mean[:, 0]), plans.replace(
        mean=jax.vmap(planning.shift)(found.mean)
    )


evaluation_action = None
evaluation_memory = EvaluationMemory(init=fresh_plans, act=plan_warm)
"""The return a run reports is the planner's through the learned model, each episode's plans
kept from step to step."""


def greedy(config: PETSConfig, spec: EnvSpec, state: PETSState, obs: jax.Array) -> jax.Array:
    """The planner as a policy of observations alone (`bellman.load`, videos): each step planned
    from the middle of the bounds, with a fixed key; weaker than the evaluated controller,
    which keeps its plans between steps."""
    fresh = fresh_plans(config, spec, obs.shape[0])
    return plan_warm(config, spec, state, obs, jax.random.PRNGKey(0), fresh)[0]
