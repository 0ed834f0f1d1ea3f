"""How a run is carried out (env, budget, seeds, logging), apart from the algorithm's own config,
and what it needs: counts that fit the compiled programs' 32-bit counters, arrays that fit in
memory. `bellman.experiment.train.train` checks all of it before it writes or compiles anything.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import jax
import numpy as np

from bellman import buffers
from bellman import config as cfg
from bellman.algos import AlgoInfo
from bellman.config import INT32_MAX, SEED_MAX
from bellman.envs import options, registry, sim2real, sim2real_host
from bellman.envs.gymnax_env import GymnaxEnv
from bellman.envs.protocol import OBJECT
from bellman.envs.registry import ResolvedEnv
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.errors import ConfigError, EnvError
from bellman.runners import offpolicy

STEPS_WHY = "bellman counts steps in 32-bit integers"
GYMNASIUM_ENVS_MAX = 100_000
"""The most gymnasium envs a run steps side by side (seeds x num_envs in training, seeds x
episodes in evaluation): each is a Python object, created and stepped one after another (about
3 KB and 0.3 ms to create each, for CartPole)."""


@dataclass(frozen=True)
class RunSettings:
    """Settings of `bellman train` that are not the algorithm's."""

    env: str
    """Environment: a JAX env id (gymnax's, bellman's, jumanji:<id>), a gymnasium id, or
    module:attr for your own env (a gymnasium.Env class, or a JAX env object or a function or
    class making one); a run given an env object from Python records object:<module>.<class>."""
    steps: int | None = None
    """Environment steps per seed, summed over parallel envs (the offline algorithms: gradient
    steps), 1 to 2,147,483,647 (32-bit counters; default: the algorithm's)."""
    seeds: int = 1
    """Independent seeds trained together (vmapped in one program on the compiled backend); as
    many as fit in memory."""
    seed: int = 0
    """Base random seed, 0 to 4,294,967,295 (JAX's 32-bit seeds); seed i of the run uses
    fold_in(PRNGKey(seed), first_seed + i)."""
    first_seed: int = 0
    """The number of the run's first seed (compiled backend): a run of seeds first_seed, ...,
    first_seed + seeds - 1, a share of a larger run's (--seed-groups trains the shares and
    merges them)."""
    backend: Literal["auto", "compiled", "gymnasium"] = "auto"
    """compiled: env and agent in one XLA program (JAX envs); gymnasium: any gymnasium env;
    auto: compiled whenever the env has a JAX implementation."""
    eval_episodes: int = 20
    """Greedy-policy episodes per seed in the final evaluation, at least 1 (run side by side, so
    as many as fit in memory)."""
    evals: int = 10
    """Greedy evaluations during training, evenly spread, for the learning curve (0: none)."""
    log_every: int | None = None
    """Environment steps per seed between log records, rounded to whole updates, at least 1
    (default: 1% of the run)."""
    checkpoint_every: int | None = None
    """Environment steps per seed between checkpoints, at least 1 (default: 10% of the run)."""
    preset: str | None = None
    """A named set of the algorithm's settings (dqn: atari, minatar), applied before the flags
    given; default: the one the algorithm picks for the env (atari for stacked Atari frames)."""
    env_params: str | None = None
    """gymnax env parameters to change, as name=value,... (gravity=20,max_steps_in_episode=200),
    a JSON object or a .json file holding one; recorded as JSON (default: gymnax's)."""
    env_kwargs: str | None = None
    """Keyword arguments of what makes the env (gymnasium.make for a gymnasium id, the class or
    function of module:attr, jumanji.make for jumanji:<id>), as key=value,..., a JSON object or a
    .json file holding one; recorded as JSON."""
    randomize: str | None = None
    """Domain randomisation: parameters drawn uniformly when each episode starts, as
    name=low:high,... (gymnax envs: their parameters, in their units, m=0.5:2.0,l=0.7:1.3 on
    Pendulum-v1; MuJoCo envs on the gymnasium backend: mass, friction, damping and gain, as
    factors of the model's values), a JSON object of [low, high] lists or a .json file holding
    one; recorded as JSON."""
    obs_noise: float = 0.0
    """Standard deviation of Gaussian noise added to every observation the policy sees."""
    action_noise: float = 0.0
    """Noise on the actions the env receives: the standard deviation of Gaussian noise for
    continuous actions (clipped to the bounds), the probability of a uniformly random action
    for discrete ones."""
    action_delay: int = 0
    """Steps between the policy choosing an action and the env receiving it, 0 to 1,000 (an
    episode's first steps apply the null action)."""
    init_from: str | None = None
    """A run directory whose newest checkpoint's algorithm state (networks, target networks,
    optimiser state, schedules) the run starts from instead of a fresh one: the same algorithm,
    seeds and network shapes, on any env of the same spaces (fine-tuning on another simulator,
    e.g. an identified one); the env, its replay memory and its episodes start fresh. Recorded as
    its full path."""
    dataset: str | None = None
    """The offline algorithms' data (bc, td3bc, cql, iql; dagger's demonstrations, optional): a
    Minari dataset's directory (made by bellman collect) or its name under ./datasets or
    $MINARI_DATASETS_PATH; recorded as its full path."""
    expert: str | None = None
    """dagger's expert: a trained run directory on the same env and backend, whose greedy policy
    (its seed 0's) labels the states the learner visits; recorded as its full path."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        steps = (INT32_MAX, STEPS_WHY)
        cfg.check_fields(
            self,
            {
                "steps": steps,
                "log_every": steps,
                "checkpoint_every": steps,
                "seed": (SEED_MAX, "JAX's random keys take 32-bit seeds"),
            },
        )
        for name in ("steps", "log_every", "checkpoint_every"):
            if getattr(self, name) is not None:
                cfg.at_least(self, 1, name)
        cfg.at_least(self, 1, "seeds", "eval_episodes")
        cfg.at_least(self, 0, "seed", "evals", "first_seed")
        cfg.at_most("first_seed + seeds", self.first_seed + self.seeds, INT32_MAX, STEPS_WHY)
        for name in ("env_params", "env_kwargs"):
            text = getattr(self, name)
            if text is not None:
                options.parse(text, name)
        if self.randomize is not None:
            sim2real.parse_ranges(self.randomize)
        sim2real.check_noise(self.obs_noise, self.action_noise, self.action_delay)

    @property
    def sim(self) -> sim2real.SimSettings:
        """The simulator-to-real changes these settings ask for."""
        ranges = None if self.randomize is None else sim2real.parse_ranges(self.randomize)
        return sim2real.SimSettings(ranges, self.obs_noise, self.action_noise, self.action_delay)


ENV_CHANGES = ("env_params", "env_kwargs", "randomize", "obs_noise", "action_noise", "action_delay")
"""The settings that make a run's env another than the id's own (its own task in comparisons,
no known bounds on its returns)."""


def changes_env(settings: dict[str, Any]) -> bool:
    """Whether recorded settings (config.json's) change the env from the id's own."""
    return any(settings.get(name) for name in ENV_CHANGES)


def resolve_env(
    settings: RunSettings, backend: str, env: Any = None
) -> tuple[RunSettings, ResolvedEnv]:
    """The run's env on `backend`, and `settings` as config.json records them: `env_params` and
    `env_kwargs` as JSON (a file's contents, not its name), so that a resumed or evaluated run
    makes the same env.

    `env` is an env object: the one given to `bellman.train`, recorded as `object:<module>.
    <class>`, which bellman cannot make again from that name; resuming or loading such a run
    takes the object again (`bellman.resume(run_dir, env=...)`, `bellman.load(run_dir,
    env=...)`), of the same class. An env id given as `env` is the one `settings` names.
    """
    recorded = settings.env
    if isinstance(env, str) and env != recorded:
        raise ConfigError(
            f"env= takes the env object of a run trained on one, not an id ('{env}'); this run's "
            f"env is '{recorded}'"
        )
    given = None if isinstance(env, str) else env
    if recorded.startswith(OBJECT):
        if given is None:
            raise EnvError(
                f"the run was trained on an env object ('{recorded}'), which bellman cannot make "
                "from that name: pass the object again from Python, as in bellman.resume(run_dir, "
                "env=...) or bellman.load(run_dir, env=...)"
            )
        if registry.env_label(given) != recorded:
            raise EnvError(
                f"the run was trained on '{recorded}', not on '{registry.env_label(given)}': "
                "pass an env of the class it was trained on"
            )
    elif given is not None:
        raise ConfigError(
            f"env= takes the env object of a run trained on one; this run's env '{recorded}' is "
            "made by bellman from its name"
        )
    target = recorded if given is None else given
    resolved = registry.resolve(target, backend, settings.env_params, settings.env_kwargs)
    sim = settings.sim
    if sim.active:
        resolved = with_sim(resolved, sim)
    return (
        dataclasses.replace(
            settings,
            env_params=resolved.env_params,
            env_kwargs=resolved.env_kwargs,
            randomize=sim2real.canonical_ranges(sim.randomize),
        ),
        resolved,
    )


def with_sim(resolved: ResolvedEnv, sim: sim2real.SimSettings) -> ResolvedEnv:
    """`resolved` with the simulator-to-real wrappers of `sim` around its JAX env; it no
    longer has a gymnasium twin (which would be the nominal env)."""
    if resolved.backend != "compiled" or resolved.jax_env is None:
        assert resolved.make_gym is not None
        factory = resolved.make_gym
        if sim.randomize:
            if not registry.is_mujoco(resolved.spec):
                raise ConfigError(
                    "randomize draws gymnax parameters (compiled backend) or a MuJoCo model's "
                    f"masses, friction, damping and gains; '{resolved.id}' on the gymnasium "
                    "backend is neither"
                )
            sim2real_host.check_names(resolved.id, sim.randomize)
            factory = sim2real_host.randomized_factory(factory, sim.randomize)
        if sim.obs_noise or sim.action_noise or sim.action_delay:
            space = resolved.spec.action_space
            if sim.action_noise > 1 and isinstance(space, Discrete):
                raise ConfigError(
                    "action_noise on discrete actions is a probability, at most 1, not "
                    f"{sim.action_noise!r}"
                )
            factory = sim2real_host.noisy_factory(
                factory, sim.obs_noise, sim.action_noise, sim.action_delay
            )
        return dataclasses.replace(resolved, make_gym=factory)
    if sim.randomize and not isinstance(resolved.jax_env, GymnaxEnv):
        raise ConfigError(
            f"randomize draws gymnax parameters (CartPole-v1, Pendulum-v1, ...); '{resolved.id}' "
            "has none"
        )
    return dataclasses.replace(
        resolved, jax_env=sim2real.wrap(resolved.jax_env, sim), make_gym=None
    )


@dataclass(frozen=True)
class Plan:
    """The run cut into updates and chunks (one compiled call per chunk)."""

    steps_per_update: int
    total_updates: int
    chunk_updates: int
    checkpoint_chunks: int
    """Chunks between checkpoints."""
    eval_chunks: int
    """Chunks between evaluations during training (0: none)."""

    @property
    def total_chunks(self) -> int:
        return math.ceil(self.total_updates / self.chunk_updates)

    @property
    def total_steps(self) -> int:
        return self.total_updates * self.steps_per_update

    def check_counts(self, gradient_steps: int = 0) -> None:
        """Raise ConfigError if a count of the run would overflow its 32-bit counter in the
        compiled programs: env steps per seed (the off-policy loop's step counter, the replay
        memory's clock, exploration schedules), the numbers of the last chunk's updates, and
        gradient steps (`gradient_steps` per update: an off-policy algorithm's learning phase;
        its optimiser's step counter)."""
        limit = f"{INT32_MAX:,}"
        spu, updates = self.steps_per_update, self.total_updates
        cfg.require(
            spu <= INT32_MAX,
            f"one update takes num_envs x num_steps = {spu:,} env steps, more than {limit} "
            f"({STEPS_WHY})",
        )
        cfg.require(
            self.total_steps <= INT32_MAX,
            f"steps rounded up to whole updates of {spu:,} env steps come to "
            f"{self.total_steps:,} per seed, more than {limit} ({STEPS_WHY}); ask for fewer",
        )
        last = self.total_chunks * self.chunk_updates - 1
        cfg.require(
            last <= INT32_MAX,
            f"the run's {updates:,} updates, compiled in chunks of {self.chunk_updates:,} (one "
            f"per log record), are numbered up to {last:,}, past {limit} (bellman numbers "
            "updates in 32-bit integers); ask for fewer steps or a smaller log_every",
        )
        cfg.require(
            updates * gradient_steps <= INT32_MAX,
            f"gradient_steps {gradient_steps:,} in each of {updates:,} updates come to "
            f"{updates * gradient_steps:,} gradient steps, more than {limit} (bellman counts "
            "gradient steps in 32-bit integers)",
        )

    @classmethod
    def make(cls, settings: RunSettings, steps: int, steps_per_update: int) -> Plan:
        total_updates = max(1, math.ceil(steps / steps_per_update))
        log_every = settings.log_every or max(1, steps // 100)
        chunk_updates = min(total_updates, max(1, round(log_every / steps_per_update)))
        chunks = math.ceil(total_updates / chunk_updates)
        checkpoint_every = settings.checkpoint_every or max(1, steps // 10)
        checkpoint_chunks = max(1, round(checkpoint_every / (chunk_updates * steps_per_update)))
        eval_chunks = max(1, chunks // settings.evals) if settings.evals else 0
        return cls(steps_per_update, total_updates, chunk_updates, checkpoint_chunks, eval_chunks)


# ----- memory -----


def nbytes(tree: Any) -> int:
    """Bytes of a pytree of arrays or of `jax.ShapeDtypeStruct`s."""
    return sum(
        int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize
        for x in jax.tree.leaves(tree)
    )


def _obs_bytes(spec: EnvSpec) -> int:
    return int(np.prod(spec.obs_shape, dtype=np.int64)) * np.dtype(spec.obs_dtype).itemsize


def _action_bytes(spec: EnvSpec) -> int:
    return int(np.prod(spec.action_space.shape, dtype=np.int64)) * 4  # int32 or float32


def _env_bytes(env: ResolvedEnv) -> int:
    """Bytes of one env's state and time step (a JAX env), or of its observation (gymnasium)."""
    if env.jax_env is None:
        return _obs_bytes(env.spec)
    key = jax.ShapeDtypeStruct((2,), np.uint32)
    return nbytes(jax.eval_shape(env.jax_env.reset, key))


def _check_side_by_side(env: ResolvedEnv, what: str, count: int) -> None:
    if env.backend == "gymnasium":
        cfg.require(
            count <= GYMNASIUM_ENVS_MAX,
            f"{what} would run {count:,} gymnasium envs side by side, more than "
            f"{GYMNASIUM_ENVS_MAX:,} (each is a Python object, created and stepped in turn)",
        )


def check_evaluation_request(episodes: Any, seed: Any, backend: Any) -> None:
    """Raise ConfigError for arguments of `bellman eval` (`evaluate_run`) of the wrong type or
    out of range, before the run is opened."""
    cfg.check_int("episodes", episodes, 1, INT32_MAX, "bellman counts in 32-bit integers")
    cfg.check_int("seed", seed, 0, SEED_MAX, "JAX's random keys take 32-bit seeds")
    cfg.require(
        backend in (None, "compiled", "gymnasium"),
        f"backend must be compiled, gymnasium or None (the run's own), not {backend!r}",
    )


def check_evaluation(env: ResolvedEnv, seeds: int, episodes: int) -> None:
    """Raise ConfigError if `episodes` greedy episodes per seed, all run side by side, would not
    fit: too many gymnasium envs, or their states more than the memory there is. Each episode
    holds its env's state and time step, its return, length and flag (16 bytes), three times
    over in the evaluation loop (its state, the next one, the step's intermediates)."""
    _check_side_by_side(env, "the evaluation", seeds * episodes)
    cfg.require_memory(
        "the evaluation",
        3 * seeds * episodes * (_env_bytes(env) + 16),
        f"{seeds:,} seed(s) x {episodes:,} episodes side by side",
    )


def check_resources(
    info: AlgoInfo, config: Any, env: ResolvedEnv, settings: RunSettings, plan: Plan
) -> None:
    """Raise ConfigError if the run would overflow a 32-bit counter (`Plan.check_counts`) or
    if one of its arrays, for all seeds, would not fit in memory (`config.require_memory`): the
    envs, the networks and optimiser state (the shapes of the algorithm's `init`), the replay
    memory of an off-policy algorithm (the shapes of `buffers.init`, and its slots numbered in
    32-bit integers) and a minibatch, or the rollout of an on-policy one, and the evaluation's
    episodes. Nothing is allocated: the sizes come from shapes alone."""
    module, off_policy = info.module, info.family == "off_policy"
    plan.check_counts(config.gradient_steps if off_policy else 0)
    seeds, spec = settings.seeds, env.spec
    envs = seeds * config.num_envs
    _check_side_by_side(env, "training", envs)
    cfg.require_memory(
        "the envs", envs * _env_bytes(env), f"{seeds:,} seed(s) x {config.num_envs:,} envs"
    )
    init = lambda key: module.init(key, config, spec, plan.total_updates)
    state = nbytes(jax.eval_shape(init, jax.ShapeDtypeStruct((2,), np.uint32)))
    cfg.require_memory(
        "the networks and their optimiser state",
        seeds * state,
        f"{seeds:,} seed(s) x {cfg.size(state)}",
    )
    if off_policy:
        frame_stack = spec.frame_stack if len(spec.obs_shape) == 3 else 1  # as `empty_buffer`
        action = offpolicy.action_example(spec)
        obs = jax.ShapeDtypeStruct(spec.obs_shape, spec.obs_dtype)
        ring = lambda o: buffers.init(config.buffer_size, config.num_envs, o, action, frame_stack)
        replay = nbytes(jax.eval_shape(ring, obs))
        cfg.require_memory(
            "the replay memory",
            seeds * replay,
            f"{config.buffer_size:,} transitions x {seeds:,} seed(s), about "
            f"{cfg.size(replay / config.buffer_size)} each",
        )
        slots = config.num_envs * buffers.slots_per_env(
            config.buffer_size, config.num_envs, frame_stack
        )
        cfg.require(
            slots <= INT32_MAX,
            f"a replay memory of buffer_size {config.buffer_size:,} needs {slots:,} slots over "
            f"its {config.num_envs:,} envs, more than {INT32_MAX:,} (bellman indexes them in "
            "32-bit integers)",
        )
        # s, a, s' and the reward, discount, weight (float32) and (env, slot) index (2 x int32)
        transition = 2 * _obs_bytes(spec) + _action_bytes(spec) + 20
        cfg.require_memory(
            "a minibatch",
            seeds * config.batch_size * transition,
            f"batch_size {config.batch_size:,} x {seeds:,} seed(s), {cfg.size(transition)} each",
        )
    else:
        # s, a, s' and the reward (float32), two end flags and the policy's numbers (log pi, V)
        transition = 2 * _obs_bytes(spec) + _action_bytes(spec) + 16
        rollout = plan.steps_per_update * transition
        cfg.require_memory(
            "a rollout",
            seeds * rollout,
            f"num_envs x num_steps = {plan.steps_per_update:,} transitions x {seeds:,} "
            f"seed(s), {cfg.size(transition)} each",
        )
    check_evaluation(env, seeds, settings.eval_episodes)
