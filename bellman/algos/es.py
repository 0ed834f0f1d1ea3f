"""Evolution strategies (Salimans et al., 2017; Mania et al., 2018): a search for a policy's
parameters that needs no gradient and no value function, only each candidate's return.

One generation, as the evolution runner drives it (`bellman.runners.evolution`):

    theta_1..theta_P ~ the strategy's search distribution around its centre       -> `ask`
      (OpenES, PGPE, ARS: theta_i = mu +- sigma eps_i, antithetic pairs;
       CMA-ES, SNES: from their adapted Gaussian; SimpleGA: mutated elites)
    F_i = the mean return of pi_theta_i over `episodes` episodes                   -> the runner,
      every member's episodes side by side in vmapped envs                           `act`
    the strategy's update from (theta_i, F_i): for OpenES                          -> `tell`
        mu <- mu + alpha / (P sigma) sum_i u(F_i) eps_i,   u: centred ranks in [-0.5, 0.5]
      (ARS: the top b directions' (F+ - F-), divided by the spread of their returns)

The strategies themselves are evosax's (0.3: `ask`/`tell` with explicit params; it minimises, so
bellman hands it -F). bellman adds the policy (an MLP, or linear as ARS uses), the observation
statistics of ARS V2 (every member's visited observations, merged after each generation), the
optimiser with decoupled weight decay (Salimans et al.'s L2 penalty), and the centre (the mean
of the search distribution; SimpleGA's best member) as the policy a run reports (`greedy`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from bellman import config as cfg
from bellman import nets
from bellman.envs.spaces import Box, Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.ops import normalization

evaluation_action = None
"""The return a run reports is the centre's, acting greedily (`greedy`)."""
evaluation_memory = None

Strategy = Literal["open_es", "cma_es", "snes", "pgpe", "ars", "simple_ga"]

GRADIENT_STRATEGIES = ("open_es", "pgpe", "ars", "snes")
"""The strategies that step their centre with an optimiser (learning_rate, optimizer,
weight_decay apply to them)."""


@dataclass(frozen=True)
class ESConfig:
    """The evolution strategy's settings; the defaults (OpenES, 256 members, an MLP of 2 x 32)
    solve CartPole."""

    strategy: Strategy = "open_es"
    """evosax's strategy: OpenAI-ES, CMA-ES, SNES, PGPE, ARS or SimpleGA."""
    population: int = 256
    """P, the members evaluated each generation (even for the antithetic strategies)."""
    episodes: int = 1
    """Episodes each member is evaluated on per generation; its fitness is their mean return."""
    common_episodes: bool = True
    """Every member plays episode e from the same start and randomness (common random numbers,
    new at every generation), so that members differ by their parameters, not their luck."""
    max_steps: int = 0
    """The steps an episode may last in an evaluation; 0: the env's time limit."""
    hidden_sizes: tuple[int, ...] = (32, 32)
    """Hidden layer widths of the policy; none, `--hidden-sizes` with no value: linear (ARS)."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "tanh"
    """Activation of the hidden layers."""
    sigma: float = 0.1
    """The initial standard deviation of the search distribution (OpenES, PGPE, ARS, SimpleGA:
    the whole run's; CMA-ES and SNES adapt it)."""
    learning_rate: float = 0.03
    """The optimiser's step size on the centre (OpenES, PGPE, ARS, SNES)."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """The optimiser of the centre: Adam (Salimans et al.) or plain SGD (ARS's update)."""
    weight_decay: float = 0.0
    """Decoupled L2 weight decay of the centre per generation, times learning_rate."""
    antithetic: bool = True
    """OpenES: sample eps and -eps in pairs (PGPE and ARS always do)."""
    fitness_shaping: Literal["default", "centered_rank", "z_score", "raw"] = "default"
    """How returns become weights: the strategy's own (centred ranks for OpenES and PGPE, the
    raw returns for ARS, which divides by the elites' spread, and SimpleGA, recombination
    weights for CMA-ES and SNES), or centred ranks, z-scores or raw returns (OpenES, PGPE, ARS)."""
    top_directions: int = 0
    """ARS: b, the directions (antithetic pairs) of the highest max(F+, F-) the update uses;
    0: all P / 2 (ARS V1 and V2; fewer is V1-t and V2-t)."""
    elite_ratio: float = 0.5
    """CMA-ES and SimpleGA: the share of the population that is recombined or kept."""
    normalize_obs: bool = False
    """Standardise observations with the running statistics of every observation the members
    visited (ARS V2); the statistics are merged after each generation."""
    continuous_actions: Literal["tanh", "clip"] = "tanh"
    """Box actions: the network's output squashed by tanh into the bounds, or clipped to them
    (ARS's linear policies)."""

    STATIC_FLOATS: ClassVar[tuple[str, ...]] = ("elite_ratio",)
    """Float settings compiled into the program: evosax sizes its elites from elite_ratio."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type, out of range or inconsistent."""
        cfg.check_fields(self)
        cfg.at_least(self, 2, "population")
        cfg.at_least(self, 1, "episodes")
        cfg.at_least(self, 0, "max_steps", "top_directions", "weight_decay")
        cfg.positive(self, "sigma", "learning_rate")
        cfg.within(self, 0, 1, "elite_ratio", open_low=True)
        cfg.require(
            all(h >= 1 for h in self.hidden_sizes),
            "hidden_sizes must be positive widths (none: a linear policy)",
        )
        antithetic = self.strategy in ("pgpe", "ars") or (
            self.strategy == "open_es" and self.antithetic
        )
        cfg.require(
            not antithetic or self.population % 2 == 0,
            f"{self.strategy} samples antithetic pairs: population must be even, not "
            f"{self.population:,}",
        )
        cfg.require(
            self.top_directions <= self.population // 2,
            f"top_directions ({self.top_directions:,}) must be at most population / 2 = "
            f"{self.population // 2:,}",
        )
        cfg.require(
            self.top_directions == 0 or self.strategy == "ars",
            "top_directions applies to ars",
        )
        cfg.require(
            self.fitness_shaping == "default" or self.strategy in ("open_es", "pgpe", "ars"),
            f"{self.strategy} weights its members itself: fitness_shaping must be 'default'",
        )
        cfg.require(
            self.weight_decay == 0 or self.strategy in GRADIENT_STRATEGIES,
            f"{self.strategy} has no optimiser to decay its centre: weight_decay applies to "
            + ", ".join(GRADIENT_STRATEGIES),
        )
        cfg.product_at_most(
            self,
            ("population", "episodes", "max_steps"),
            cfg.INT32_MAX,
            "bellman counts steps in 32-bit integers",
        )

    @property
    def num_envs(self) -> int:
        """Envs per seed: every member's episodes side by side (and the centre's, not counted)."""
        return self.population * self.episodes

    @property
    def num_steps(self) -> int:
        """Steps of one generation's episodes: a generation counts num_envs x max_steps env
        steps, the compiled program's work (the steps inside episodes are logged as
        `env_steps`)."""
        return self.max_steps


Config = ESConfig
DEFAULT_STEPS = 20_000_000


class ESState(struct.PyTreeNode):
    strategy: Any
    """evosax's state of the search distribution (or SimpleGA's population)."""
    obs_stats: normalization.RunningMeanStd
    """Running statistics of the members' observations (`normalize_obs`)."""


def check_env(config: ESConfig, spec: EnvSpec) -> None:
    """The policy's output space: discrete actions, or bounded Box actions; an episode length."""
    space = spec.action_space
    if not (isinstance(space, Discrete) or (isinstance(space, Box) and space.bounded)):
        raise EnvError(
            f"es acts in discrete or bounded continuous action spaces; {spec.id} has "
            f"{describe(space)}"
        )
    if config.max_steps == 0 and spec.max_episode_steps is None:
        raise EnvError(
            f"{spec.id} has no time limit: give es the steps of an evaluation episode with "
            "--max-steps"
        )


def fit_to_env(config: ESConfig, spec: EnvSpec) -> ESConfig:
    """max_steps = the env's time limit unless given."""
    if config.max_steps == 0 and spec.max_episode_steps is not None:
        return dataclasses.replace(config, max_steps=spec.max_episode_steps)
    return config


# ----- the policy -----


def network(config: ESConfig, spec: EnvSpec) -> nets.MLP:
    space = spec.action_space
    out = space.n if isinstance(space, Discrete) else math.prod(cast(Box, space).shape)
    return nets.MLP(config.hidden_sizes, out, config.activation)


def init_params(key: jax.Array, config: ESConfig, spec: EnvSpec) -> Any:
    """The centre's first parameters: the MLP's orthogonal initialisation; zeros for a linear
    policy (ARS starts from M = 0)."""
    x = jnp.zeros((1, nets.obs_features(jnp.zeros(spec.obs_shape), spec).size))
    params = network(config, spec).init(key, x)
    if not config.hidden_sizes:
        params = jax.tree.map(jnp.zeros_like, params)
    return params


def act(config: ESConfig, spec: EnvSpec, state: ESState, params: Any, obs: jax.Array) -> jax.Array:
    """pi_theta's deterministic actions for observations `[B, *obs_shape]` (one member's)."""
    x = nets.obs_features(obs, spec)
    if config.normalize_obs:
        x = normalization.normalize(state.obs_stats, x)
    out = cast(jax.Array, network(config, spec).apply(params, x))
    space = spec.action_space
    if isinstance(space, Discrete):
        return jnp.argmax(out, axis=-1)
    assert isinstance(space, Box)
    scale, offset = nets.box_affine(space)
    y = out.reshape((*out.shape[:-1], *space.shape))
    if config.continuous_actions == "tanh":
        return offset + scale * jnp.tanh(y)
    return jnp.clip(y, offset - scale, offset + scale)


def greedy(config: ESConfig, spec: EnvSpec, state: ESState, obs: jax.Array) -> jax.Array:
    """The centre's actions: the policy a run reports and `bellman eval` evaluates."""
    return act(config, spec, state, center(config, spec, state), obs)


# ----- the strategy (evosax) -----


def template(config: ESConfig, spec: EnvSpec) -> Any:
    """Zero parameters of the policy's shapes: the pytree evosax ravels members into."""
    shapes = jax.eval_shape(lambda k: init_params(k, config, spec), jax.random.key(0))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def shaping(config: ESConfig) -> Any:
    """The fitness shaping function handed to evosax (on fitness = -return)."""
    from evosax.core import fitness_shaping

    return {
        "centered_rank": fitness_shaping.centered_rank_fitness_shaping_fn,
        "z_score": fitness_shaping.standardize_fitness_shaping_fn,
        "raw": fitness_shaping.identity_fitness_shaping_fn,
    }[config.fitness_shaping]


def optimizer(config: ESConfig) -> optax.GradientTransformation:
    """The centre's optimiser, with decoupled weight decay first (theta <- theta - lr wd theta)."""
    step = optax.adam if config.optimizer == "adam" else optax.sgd
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay), step(learning_rate=config.learning_rate)
    )


def strategy(config: ESConfig, spec: EnvSpec) -> tuple[Any, Any]:
    """evosax's strategy object for the config, and its params. The object is rebuilt at every
    call (cheap: no arrays of the run in it), since the config's floats may be traced.
    evosax is imported here: importing it starts JAX, which must first see bellman's XLA flags."""
    from evosax import algorithms as evosax_algorithms

    solution, size = template(config, spec), config.population
    sigma = optax.constant_schedule(config.sigma)
    shaped = {} if config.fitness_shaping == "default" else {"fitness_shaping_fn": shaping(config)}
    es: Any
    if config.strategy == "open_es":
        es = evosax_algorithms.Open_ES(
            size,
            solution,
            use_antithetic_sampling=config.antithetic,
            optimizer=optimizer(config),
            std_schedule=sigma,
            **shaped,
        )
    elif config.strategy == "ars":
        es = evosax_algorithms.ARS(
            size, solution, optimizer=optimizer(config), std_schedule=sigma, **shaped
        )
        # evosax keeps int(elite_ratio * P // 2) directions: b + 1/2 of P / 2 rounds down to b
        top = config.top_directions or size // 2
        es.elite_ratio = (top + 0.5) / (size // 2)
    elif config.strategy == "pgpe":
        es = evosax_algorithms.PGPE(size, solution, optimizer=optimizer(config), **shaped)
    elif config.strategy == "snes":
        es = evosax_algorithms.SNES(size, solution, optimizer=optimizer(config))
    elif config.strategy == "cma_es":
        es = evosax_algorithms.CMA_ES(size, solution)
        es.elite_ratio = config.elite_ratio
    else:
        es = evosax_algorithms.SimpleGA(size, solution, std_schedule=sigma)
        es.elite_ratio = config.elite_ratio
    params = es.default_params
    if config.strategy in ("pgpe", "snes", "cma_es"):
        params = params.replace(std_init=config.sigma)
    return es, params


def unravel(config: ESConfig, spec: EnvSpec, flat: jax.Array) -> Any:
    """A flat parameter vector as the policy's pytree."""
    return ravel_pytree(template(config, spec))[1](flat)


def init(key: jax.Array, config: ESConfig, spec: EnvSpec, total_updates: int) -> ESState:
    """The search distribution around the policy's first parameters (SimpleGA: a population
    mutated from them). evosax starts its records of the best member as NaN and infinity;
    they are made finite so that the first checkpoint counts as a good one."""
    del total_updates
    params_key, es_key, population_key = jax.random.split(key, 3)
    es, es_params = strategy(config, spec)
    mean = init_params(params_key, config, spec)
    if config.strategy == "simple_ga":
        flat = ravel_pytree(mean)[0]
        noise = jax.random.normal(population_key, (config.population, flat.size))
        population = jax.vmap(ravel_pytree(mean)[1])(flat + config.sigma * noise)
        fitness = jnp.full((config.population,), jnp.inf)
        es_state = es.init(es_key, population, fitness, es_params)
    else:
        es_state = es.init(es_key, mean, es_params)
    es_state = jax.tree.map(jnp.nan_to_num, es_state)
    obs_size = nets.obs_features(jnp.zeros(spec.obs_shape), spec).size
    return ESState(es_state, normalization.RunningMeanStd.create((obs_size,)))


def center_vector(config: ESConfig, es_state: Any) -> jax.Array:
    """The reported policy's parameters as evosax keeps them, one flat vector: the search
    distribution's mean; SimpleGA's best member of the last generation (by its return)."""
    if config.strategy == "simple_ga":
        return es_state.population[jnp.argmin(es_state.fitness)]
    return es_state.mean


def center(config: ESConfig, spec: EnvSpec, state: ESState) -> Any:
    """The policy the run reports (`center_vector`), as the policy's parameters."""
    return unravel(config, spec, center_vector(config, state.strategy))


def ask(config: ESConfig, spec: EnvSpec, state: ESState, key: jax.Array) -> tuple[Any, ESState]:
    """The generation's members: policy parameters with a leading `[P]` axis."""
    es, es_params = strategy(config, spec)
    population, es_state = es.ask(key, state.strategy, es_params)
    return population, state.replace(strategy=es_state)


def tell(
    config: ESConfig,
    spec: EnvSpec,
    state: ESState,
    population: Any,
    returns: jax.Array,
    obs_moments: tuple[jax.Array, jax.Array, jax.Array],
    key: jax.Array,
) -> tuple[ESState, dict[str, jax.Array]]:
    """The strategy's update from each member's mean return `[P]` (evosax minimises -F); the
    observation statistics merge the generation's (count, mean, variance) of visited
    observations."""
    es, es_params = strategy(config, spec)
    es_state, _ = es.tell(key, population, -returns, state.strategy, es_params)
    obs_stats = state.obs_stats
    if config.normalize_obs:
        obs_stats = normalization.merge(obs_stats, *obs_moments)
    std = getattr(es_state, "std", jnp.asarray(config.sigma))
    metrics = {
        "fitness_best": returns.max(),
        "fitness_mean": returns.mean(),
        "fitness_std": returns.std(),
        "sigma": jnp.mean(std),
        "center_norm": jnp.linalg.norm(center_vector(config, es_state)),
    }
    return ESState(es_state, obs_stats), metrics
