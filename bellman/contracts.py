"""What an algorithm promises the code that drives it: one `typing.Protocol` per family of
algorithm modules, the capabilities a module may declare, the settings of the off-policy loop,
and the registry entry (`AlgoInfo`).

- on_policy, `OnPolicyAlgorithm`: rollout -> learn (`runners.onpolicy`, `runners.onpolicy_host`):
  PPO, A2C, REINFORCE;
- tabular, `TabularAlgorithm`: the same runners with one-step rollouts: Q-learning, SARSA,
  Expected SARSA, TD(0);
- off_policy, `OffPolicyAlgorithm`: act -> store -> sample -> learn (`runners.offpolicy`,
  `runners.offpolicy_host`), its config a `ReplayLoop`: DQN, DDPG/TD3, SAC;
- self_play, `SelfPlayAlgorithm`: search -> play -> store finished games -> learn
  (`runners.selfplay`) on two-player games: AlphaZero;
- unroll, `UnrollAlgorithm`: search through a learned model -> act -> store trajectories ->
  learn from K-step unrolls (`runners.unroll`), on single-agent envs and games: MuZero;
- control, `ControlAlgorithm`: plan from the env's state through its own step function -> act
  (`runners.control`), nothing learned: model predictive control (CEM, MPPI);
- evolution, `EvolutionAlgorithm`: ask for a population -> play each member's episodes -> tell
  (`runners.evolution`), no gradients: evolution strategies (OpenES, CMA-ES, ARS, ...);
- offline, `OfflineAlgorithm`: sample a minibatch of a fixed dataset -> learn (`runners.offline`),
  no env steps, its config an `OfflineLoop`: behaviour cloning, TD3+BC, CQL, IQL;
- dagger, `LearnsFromData`: play a mixture of learner and expert -> the expert labels the states
  -> aggregate -> learn (`runners.dagger`): DAgger;
- adversarial, `AdversarialAlgorithm`: rollout -> learn with the expert's demonstrations at hand
  (`runners.adversarial`): GAIL;
- planning, `PlanningAlgorithm`: `bellman solve` (`experiment.solve`): dynamic programming
  (`algos.dp`).

Nothing is probed for. What a runner needs travels with the module it is handed: an optional
capability that changes what the runner does (REINFORCE's whole episodes, DDPG's noise state,
DQN's evaluation epsilon) is a member of the protocol, declared by every module of the family
(None or False where it has none). What only the driver (`experiment.train`) uses is a field of
the module's registry entry, `AlgoInfo`: presets, the preset an env gets, settings that follow
from the env, a value table to plot.

Algorithms and runners both import this module, and it imports neither (pyproject.toml's
`[tool.importlinter]` contracts keep it so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, runtime_checkable

import jax

from bellman import buffers
from bellman import config as cfg
from bellman.buffers import Batch
from bellman.envs.spaces import EnvSpec
from bellman.errors import ConfigError
from bellman.mdp import FiniteMDP
from bellman.rollout import Rollout

# ----- declared capabilities -----


class ValueTable(NamedTuple):
    """A tabular method's answer on a finite env."""

    values: jax.Array
    """`[S]` V(s): best_a Q(s, a), or the evaluated V."""
    policy: jax.Array | None
    """`[S]` greedy actions (None for a prediction method, which learns no policy)."""
    minimize: bool
    """The values are costs, and the policy minimises them."""


EvaluationAction = Callable[[Any, EnvSpec, Any, jax.Array, jax.Array], jax.Array]
"""`(config, spec, state, obs, key) -> actions`: the policy whose return a run reports, where it
is not `greedy` (DQN's evaluation epsilon, the random policy TD(0) evaluates)."""

EpsilonSchedule = Callable[[Any, int, jax.Array], jax.Array]
"""`(config, total_steps, env_step) -> epsilon`: an exploration rate, logged by the runner."""

ValuesAndPolicy = Callable[[Any, Any], ValueTable]
"""`(config, state) -> ValueTable`: a finite env's values and greedy policy, plotted after
training."""

FitToEnv = Callable[[Any, EnvSpec], Any]
"""`(config, spec) -> config`: settings that follow from the env (REINFORCE's rollout as long as
the time limit)."""

GlimpsePaths = Callable[[Any, EnvSpec, Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
"""`(config, spec, state, obs, key) -> (locations, answers)`: where an attention model looks on
images `[B, H, W]`, `[B, T, 2]` (row, column in [-1, 1]), and what it answers `[B]`; drawn after
training."""

PresetFor = Callable[[EnvSpec], str | None]
"""`(spec) -> preset name or None`: the preset an env gets when none is named."""


@dataclass(frozen=True)
class ExplorationNoise:
    """Exploration noise with a state per env, correlated in time (DDPG's Ornstein-Uhlenbeck
    process): the off-policy runners keep the state (`RunnerState.noise`), zeroed where an env's
    episode ends."""

    init: Callable[[Any, EnvSpec, int], Any]
    """`(config, spec, num_envs) -> noise`: the state of `num_envs` envs, `[E, ...]`."""
    act: Callable[[Any, EnvSpec, Any, jax.Array, jax.Array, jax.Array, Any], tuple[jax.Array, Any]]
    """`(config, spec, state, obs, key, env_step, noise) -> (actions, noise)`: the exploration
    policy's actions and the noise state after them."""
    metrics: Callable[[Any], dict[str, jax.Array]] | None = None
    """`(noise) -> metrics`: what the runner logs of the noise state `[E, ...]` (PETS: the
    planned returns), or None."""


@dataclass(frozen=True)
class EvaluationMemory:
    """The policy a run reports, when it keeps a state per episode from step to step (PETS: each
    episode's plan, warm-starting the next step's planning as in training). An evaluation runs
    each env's episode once, so the memory starts fresh with the episode and is never reset."""

    init: Callable[[Any, EnvSpec, int], Any]
    """`(config, spec, num_envs) -> memory`: the memory of `num_envs` fresh episodes, `[E, ...]`."""
    act: Callable[[Any, EnvSpec, Any, jax.Array, jax.Array, Any], tuple[jax.Array, Any]]
    """`(config, spec, state, obs, key, memory) -> (actions, memory)`: the reported policy's
    actions and the memory after them."""


# ----- the protocols -----


@runtime_checkable
class Algorithm(Protocol):
    """What every trained algorithm module gives (`bellman.algos.ppo` is an example)."""

    __name__: str

    @property
    def Config(self) -> type[Any]:
        """Its settings: a frozen dataclass, a docstring per field, with `validate()`."""
        ...

    @property
    def DEFAULT_STEPS(self) -> int:
        """Env steps per seed a run takes unless told."""
        ...

    def check_env(self, config: Any, spec: EnvSpec) -> None:
        """Raise EnvError if the algorithm cannot act in the env."""
        ...

    def init(self, key: jax.Array, config: Any, spec: EnvSpec, total_updates: int) -> Any:
        """One seed's state (a pytree) for a run of `total_updates` updates."""
        ...

    def greedy(self, config: Any, spec: EnvSpec, state: Any, obs: jax.Array) -> jax.Array:
        """The learned deterministic policy's actions for observations `[B, *obs_shape]`."""
        ...

    @property
    def evaluation_action(self) -> EvaluationAction | None:
        """The policy a run reports its return for, or None: `greedy`'s."""
        ...

    @property
    def evaluation_memory(self) -> EvaluationMemory | None:
        """The policy a run reports its return for, when it keeps a state per episode (then
        `evaluation_action` is None), or None."""
        ...


@runtime_checkable
class OnPolicyAlgorithm(Algorithm, Protocol):
    """Rollout -> learn (`runners.onpolicy`): PPO, A2C, REINFORCE."""

    def act(
        self, config: Any, spec: EnvSpec, state: Any, obs: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, Any]:
        """Actions for `[B]` observations, and what the rollout keeps from acting."""
        ...

    def learn(
        self, config: Any, spec: EnvSpec, state: Any, rollout: Rollout, key: jax.Array
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One update from a rollout `[T, B]`: the new state and metrics."""
        ...

    @property
    def EPISODIC(self) -> bool:
        """Every rollout resets every env first and counts only each env's first episode
        (REINFORCE's Monte-Carlo returns need whole episodes)."""
        ...


@runtime_checkable
class TabularAlgorithm(OnPolicyAlgorithm, Protocol):
    """The tabular TD methods: on-policy functions on a table, one-step rollouts."""

    def values_and_policy(self, config: Any, state: Any) -> ValueTable:
        """The table's values and greedy policy, to plot."""
        ...


@runtime_checkable
class OffPolicyAlgorithm(Algorithm, Protocol):
    """Act -> store -> sample -> learn (`runners.offpolicy`): DQN, DDPG/TD3, SAC."""

    @property
    def Config(self) -> type[ReplayLoop]:
        """Its settings: a `ReplayLoop` with the algorithm's own fields."""
        ...

    def act(
        self,
        config: Any,
        spec: EnvSpec,
        state: Any,
        obs: jax.Array,
        key: jax.Array,
        env_step: jax.Array,
    ) -> jax.Array:
        """The exploration policy's actions after `env_step` env steps."""
        ...

    def learn(
        self, config: Any, spec: EnvSpec, state: Any, batch: Batch, key: jax.Array
    ) -> tuple[Any, dict[str, jax.Array], jax.Array]:
        """One gradient step on a sampled minibatch: the new state, metrics, and the TD errors
        `[B]` (the new priorities of prioritised replay)."""
        ...

    @property
    def NOISE(self) -> ExplorationNoise | None:
        """Exploration noise with a state of its own, or None."""
        ...

    @property
    def epsilon(self) -> EpsilonSchedule | None:
        """An exploration schedule to log, or None."""
        ...


@runtime_checkable
class SelfPlayAlgorithm(Algorithm, Protocol):
    """Self-play with tree search on a two-player game (`runners.selfplay`): AlphaZero."""

    @property
    def Batch(self) -> type[Any]:
        """Positions with their targets: fields obs, legal, policy, value."""
        ...

    def check_game(self, env: Any) -> None:
        """Raise EnvError unless `env` is a game the algorithm plays."""
        ...

    def act(
        self,
        config: Any,
        game: Any,
        state: Any,
        states: Any,
        key: jax.Array,
        explore: bool,
        move_number: jax.Array | None = ...,
    ) -> tuple[jax.Array, jax.Array]:
        """Moves in the game positions `states` `[B]` and the search's policy targets."""
        ...

    def learn(
        self, config: Any, spec: EnvSpec, state: Any, batch: Any
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One gradient step on a batch of positions: the new state and metrics."""
        ...


@runtime_checkable
class UnrollAlgorithm(Algorithm, Protocol):
    """Search through a learned model, trained on K-step unrolls of stored trajectories
    (`runners.unroll`): MuZero. It plays games too: `act` and `check_game` as `SelfPlayAlgorithm`'s
    (the players of `bellman arena` and the game's evaluation)."""

    @property
    def Unroll(self) -> type[Any]:
        """Sampled positions with K steps of actions, targets and masks."""
        ...

    def plan(
        self,
        config: Any,
        spec: EnvSpec,
        state: Any,
        obs: jax.Array,
        legal: jax.Array,
        key: jax.Array,
        explore: bool,
        two_player: bool,
        simulations: int | None = ...,
    ) -> Any:
        """A search from observations `[B, ...]`: `.action`, `.policy` (the policy target) and
        `.value` (the root's value, the n-step targets' bootstrap)."""
        ...

    def value(self, config: Any, spec: EnvSpec, state: Any, obs: jax.Array) -> jax.Array:
        """The network's value of observations `[B, ...]`, without search."""
        ...

    def act(
        self,
        config: Any,
        game: Any,
        state: Any,
        states: Any,
        key: jax.Array,
        explore: bool,
        move_number: jax.Array | None = ...,
    ) -> tuple[jax.Array, jax.Array]:
        """Moves in the game positions `states` `[B]` and the search's policy."""
        ...

    def check_game(self, env: Any) -> None:
        """Raise EnvError unless the algorithm plays `env`."""
        ...

    def learn(
        self, config: Any, spec: EnvSpec, state: Any, batch: Any
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One gradient step on a batch of unrolls: the new state and metrics."""
        ...


@runtime_checkable
class ControlAlgorithm(Protocol):
    """A controller that plans with the env's own dynamics from the env's state
    (`runners.control`): model predictive control. It has no policy of observations alone (no
    `greedy`): its evaluation plans too."""

    __name__: str

    @property
    def Config(self) -> type[Any]:
        """Its settings: a frozen dataclass, a docstring per field, with `validate()`."""
        ...

    @property
    def DEFAULT_STEPS(self) -> int:
        """Env steps per seed a run takes unless told."""
        ...

    def check_env(self, config: Any, spec: EnvSpec) -> None:
        """Raise EnvError if the controller cannot act in the env."""
        ...

    def init(self, key: jax.Array, config: Any, spec: EnvSpec, total_updates: int) -> Any:
        """One seed's state (a pytree) for `config.num_envs` envs."""
        ...

    def act(
        self, config: Any, env: Any, state: Any, env_states: Any, key: jax.Array
    ) -> tuple[jax.Array, Any, Any]:
        """The actions `[E, ...]` planned from the envs' states `[E]` through `env.step`, the
        new state, and what the planning found (`.planned_return`, `.best_return`, `[E]`)."""
        ...

    def reset(self, config: Any, spec: EnvSpec, state: Any, done: jax.Array) -> Any:
        """The state with the envs whose episode ended (`done` `[E]`) started afresh."""
        ...


@runtime_checkable
class EvolutionAlgorithm(Algorithm, Protocol):
    """A search over policy parameters by their returns (`runners.evolution`): evolution
    strategies. `greedy` is the centre's policy."""

    def ask(self, config: Any, spec: EnvSpec, state: Any, key: jax.Array) -> tuple[Any, Any]:
        """The generation's members (policy parameters with a leading `[P]` axis) and the
        state."""
        ...

    def center(self, config: Any, spec: EnvSpec, state: Any) -> Any:
        """The parameters of the policy the run reports."""
        ...

    def act(self, config: Any, spec: EnvSpec, state: Any, params: Any, obs: jax.Array) -> jax.Array:
        """The actions of the policy with parameters `params` for observations `[B, ...]`."""
        ...

    def tell(
        self,
        config: Any,
        spec: EnvSpec,
        state: Any,
        population: Any,
        returns: jax.Array,
        obs_moments: tuple[jax.Array, jax.Array, jax.Array],
        key: jax.Array,
    ) -> tuple[Any, dict[str, jax.Array]]:
        """The state after the members' mean returns `[P]`, the generation's visited
        observations' (count, mean, variance) merged into its statistics; and metrics."""
        ...


class DataStats(NamedTuple):
    """What an offline algorithm may take from its dataset before learning: the observations'
    per-feature mean and standard deviation `[F]` (of `nets.obs_features`), the dataset's size,
    and the lowest and highest undiscounted return of its episodes (IQL scales rewards by
    1000 / (max - min) on locomotion)."""

    obs_mean: jax.Array
    obs_std: jax.Array
    size: jax.Array
    min_return: jax.Array
    max_return: jax.Array


@runtime_checkable
class LearnsFromData(Algorithm, Protocol):
    """Learns from minibatches of data it did not choose: the offline algorithms, and DAgger's
    learner (`runners.dagger`), whose data are states labelled by an expert."""

    def prepare(self, config: Any, spec: EnvSpec, state: Any, stats: DataStats) -> Any:
        """The fresh state given the dataset's statistics (TD3+BC normalises observations with
        them); the state unchanged where the algorithm takes nothing from them."""
        ...

    def learn(
        self, config: Any, spec: EnvSpec, state: Any, batch: Batch, key: jax.Array
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One gradient step on a minibatch of the data: the new state and metrics."""
        ...


@runtime_checkable
class OfflineAlgorithm(LearnsFromData, Protocol):
    """Learns from a fixed dataset of transitions (`runners.offline`): behaviour cloning,
    TD3+BC, CQL, IQL. Each update samples a minibatch uniformly from the dataset (a `Batch`,
    `discount` = gamma (1 - terminated): a truncated episode still bootstraps)."""

    @property
    def Config(self) -> type[OfflineLoop]:
        """Its settings: an `OfflineLoop` with the algorithm's own fields."""
        ...


@runtime_checkable
class AdversarialAlgorithm(Algorithm, Protocol):
    """Imitation by an adversary (`runners.adversarial`): the on-policy loop's rollouts, learned
    from with the expert's demonstrations at hand (GAIL)."""

    def act(
        self, config: Any, spec: EnvSpec, state: Any, obs: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, Any]:
        """Actions for `[B]` observations, and what the rollout keeps from acting."""
        ...

    @property
    def EPISODIC(self) -> bool:
        """As the on-policy algorithms' (`OnPolicyAlgorithm.EPISODIC`)."""
        ...

    def prepare(self, config: Any, spec: EnvSpec, state: Any, stats: DataStats) -> Any:
        """The fresh state given the demonstrations' statistics."""
        ...

    def learn(
        self, config: Any, spec: EnvSpec, state: Any, rollout: Rollout, key: jax.Array, demos: Any
    ) -> tuple[Any, dict[str, jax.Array]]:
        """One update from a rollout `[T, B]` and the demonstrations (`[N, ...]` arrays `obs`
        and `action`): the new state and metrics."""
        ...


@runtime_checkable
class PlanningAlgorithm(Protocol):
    """Exact planning on a finite MDP (`bellman.algos.dp`), run by `bellman solve`."""

    @property
    def METHODS(self) -> tuple[str, ...]:
        """The methods `solve` runs."""
        ...

    def check_arguments(
        self, method: Any, iterations: Any = ..., tol: Any = ..., in_place: Any = ...
    ) -> None:
        """Raise ConfigError for settings of `solve` that cannot work, before any MDP is read."""
        ...

    def solve(
        self,
        mdp: FiniteMDP,
        method: str,
        *,
        iterations: int | None = ...,
        tol: float = ...,
        in_place: bool = ...,
        policy: Any = ...,
    ) -> Any:
        """Values, Q-values and a greedy policy of one MDP."""
        ...

    def greedy_policy(self, mdp: FiniteMDP, v: jax.Array) -> jax.Array:
        """The greedy actions `[S]` in the values `v`."""
        ...


Family = Literal[
    "on_policy",
    "tabular",
    "off_policy",
    "self_play",
    "unroll",
    "control",
    "evolution",
    "offline",
    "dagger",
    "adversarial",
]

PROTOCOLS: dict[Family, type] = {
    "on_policy": OnPolicyAlgorithm,
    "tabular": TabularAlgorithm,
    "off_policy": OffPolicyAlgorithm,
    "self_play": SelfPlayAlgorithm,
    "unroll": UnrollAlgorithm,
    "control": ControlAlgorithm,
    "evolution": EvolutionAlgorithm,
    "offline": OfflineAlgorithm,
    "dagger": LearnsFromData,
    "adversarial": AdversarialAlgorithm,
}
"""The protocol the module of each registered family satisfies."""


# ----- the off-policy loop's settings -----

MAX_N_STEP = 100
"""The longest n-step return: `buffers.sample` unrolls its n steps in the compiled program, and
100 already add seconds of compilation."""


@dataclass(frozen=True)
class ReplayLoop:
    """The settings the off-policy loop (`runners.offpolicy`) reads: its envs, its replay memory
    and its learning phases. DQN's, DDPG's and SAC's configs extend it (one level), each with
    its own defaults where they differ from these, the continuous-control benchmarks' (one env,
    a 1M replay, batch 256, one gradient step per env step)."""

    num_envs: int = 1
    """Parallel environments per seed."""
    buffer_size: int = 1_000_000
    """Transitions the replay memory keeps (the newest; split evenly over the envs; as many as
    fit in memory, for all seeds)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    learning_starts: int = 1_000
    """Env steps (summed over envs) stored before the first gradient step (DDPG, TD3 and SAC act
    uniformly at random until then)."""
    train_frequency: int = 1
    """Env steps per env between learning phases."""
    gradient_steps: int = 1
    """Gradient steps in each learning phase (of the critics, for DDPG and TD3)."""
    n_step: int = 1
    """n-step returns: the target sums n rewards, sum_{k<n} gamma^k r_{t+k}, and bootstraps from
    s_{t+n} with gamma^n; n from 1 to 100 (and at most buffer_size / num_envs)."""
    prioritized: bool = False
    """Prioritised replay (Schaul et al., 2016), proportional to |TD error|^alpha (of the first
    critic, for DDPG, TD3 and SAC)."""
    priority_alpha: float = 0.6
    """Prioritisation exponent alpha (0: uniform)."""
    priority_beta: float = 0.4
    """Importance-sampling exponent beta at the start, annealed linearly to 1 over the run."""
    clip_rewards: float = 0.0
    """Clip each reward to [-c, c] for learning (Atari: 1); 0: no clipping. Returns are
    reported unclipped."""

    STATIC_FLOATS: ClassVar[tuple[str, ...]] = ("clip_rewards",)
    """Float settings compiled into the program (`bellman.config.traced_fields`): 0 switches
    reward clipping off."""

    @property
    def num_steps(self) -> int:
        """Env steps per env in one update of the runner (then a learning phase)."""
        return self.train_frequency

    @property
    def steps_per_update(self) -> int:
        """Env steps of all the envs together in one update: num_envs * train_frequency."""
        return self.num_envs * self.train_frequency

    def validate(self) -> None:
        """Raise ConfigError for a field of the wrong type (every field, the subclass's too) or
        a loop setting out of range; a subclass checks its own fields after these. (The replay
        memory's size in memory and in 32-bit slot numbers is checked with the env, by
        `bellman.experiment.settings.check_resources`.)"""
        steps = (cfg.INT32_MAX, "bellman counts steps in 32-bit integers")
        cfg.check_fields(
            self,
            {
                "buffer_size": (2**62, "more than any memory"),
                "learning_starts": steps,
                "train_frequency": steps,
                "n_step": (MAX_N_STEP, "the n-step sum is unrolled in the compiled program"),
            },
        )
        cfg.at_least(self, 1, "num_envs", "buffer_size", "batch_size", "train_frequency", "n_step")
        cfg.at_least(self, 0, "gradient_steps", "learning_starts")
        cfg.product_at_most(self, ("num_envs", "train_frequency"), *steps)
        cfg.product_at_most(self, ("num_envs", "n_step"), *steps)
        keep = buffers.transitions_per_env(self.buffer_size, self.num_envs)
        cfg.require(
            self.n_step <= keep,
            f"n_step ({self.n_step}) must be at most the transitions each env's ring keeps, "
            f"buffer_size / num_envs = {keep:,}",
        )
        cfg.within(self, 0, 1, "gamma", "priority_beta")
        cfg.at_least(self, 0, "priority_alpha", "clip_rewards")


@dataclass(frozen=True)
class OfflineLoop:
    """The settings the offline loop (`runners.offline`) reads. One update is one gradient step
    on a minibatch drawn uniformly from the dataset, so a run's `--steps` count gradient steps
    (there are no env steps: the evaluations alone play episodes)."""

    batch_size: int = 256
    """Transitions per gradient step, drawn uniformly with replacement."""
    gamma: float = 0.99
    """Discount factor."""

    @property
    def num_envs(self) -> int:
        """One stream of updates per seed."""
        return 1

    @property
    def num_steps(self) -> int:
        """Gradient steps per update."""
        return 1

    def validate(self) -> None:
        """Raise ConfigError for a field of the wrong type (every field, the subclass's too) or
        a loop setting out of range; a subclass checks its own fields after these."""
        cfg.check_fields(self, {})
        cfg.at_least(self, 1, "batch_size")
        cfg.within(self, 0, 1, "gamma")


# ----- the registry entry -----


@dataclass(frozen=True)
class AlgoInfo:
    """A registered algorithm (`bellman.algos.ALGOS`): a name for a module, and what the driver
    may use besides the module's protocol, each declared (None where the algorithm has none)."""

    name: str
    module: ModuleType
    """The algorithm; it satisfies `PROTOCOLS[family]`."""
    family: Family
    """Its protocol, and so its runners: the off-policy ones for `off_policy`, the on-policy ones
    for `on_policy` and `tabular`, the self-play one for `self_play`, the unroll one for
    `unroll`, the control one for `control`, the evolution one for `evolution`, the offline one
    for `offline`, the DAgger one for `dagger`, the adversarial one for `adversarial`."""
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)
    """Config fields this name presets (e.g. `sarsa` is the tabular module with method=sarsa)."""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Named sets of config fields (`--preset`), shipped as data: `bellman/presets/*.toml`."""
    preset_for: PresetFor | None = None
    """The preset an env gets when none is named (e.g. Atari's for stacked pixel frames)."""
    fit_to_env: FitToEnv | None = None
    """Settings that follow from the env, applied after the config is checked."""
    values_and_policy: ValuesAndPolicy | None = None
    """A finite env's value table and greedy policy, plotted after training."""
    glimpse_paths: GlimpsePaths | None = None
    """Where an attention model looks on the env's images, drawn after training."""

    def make_config(self) -> Any:
        """The config this name trains with by default."""
        return dataclasses.replace(self.module.Config(), **self.defaults)

    def check_config(self, config: Any) -> Any:
        """`config` if it is this algorithm's config class, else ConfigError."""
        cls = self.module.Config
        if not isinstance(config, cls):
            raise ConfigError(
                f"config must be a {cls.__name__} ({self.module.__name__}.Config) for "
                f"{self.name}, not {type(config).__name__}"
            )
        return config
