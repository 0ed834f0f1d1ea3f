"""`bellman collect`: a trained run's policy recorded into a Minari dataset (`bellman.datasets`).

    bellman collect RUN_DIR --episodes N --out DIR [--epsilon E | --noise S | --stochastic]
                    [--expert EXPERT_RUN] [--replay]

The policy plays N episodes of the run's env (its gymnasium twin, wrapped in Minari's own
`DataCollector`, which writes the dataset): the greedy action, or with `--epsilon` a uniformly
random action with probability E, with `--noise` the greedy action plus Gaussian noise of S
half-widths of the action box, with `--stochastic` the run's own behaviour policy. With
`--replay`, the dataset is the run's replay memory instead (an off-policy run's, at its newest
checkpoint): D4RL's medium-replay, every transition the run stored up to then, in episodes.

D4RL's levels from bellman's own runs: expert (a converged run's policy), medium (a run stopped
at about a third of the expert's return), random (`--random`: the uniform policy), and
medium-replay (`--replay` on the medium run). Every dataset records the reference returns of the
normalised score: the uniformly random policy's mean return and the expert's (the greedy policy
of `--expert`, default the run itself), each over `--reference-episodes` episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bellman import config as cfg
from bellman import datasets
from bellman.envs.spaces import Box, Discrete
from bellman.errors import ConfigError, RunDirError
from bellman.experiment.policy import Policy, TrainedRun, open_run
from bellman.runners.evaluation import evaluate_gymnasium


@dataclass(frozen=True)
class Collected:
    """What `collect` wrote."""

    path: Path
    dataset_id: str
    episodes: int
    steps: int
    mean_return: float
    ref_min_score: float
    ref_max_score: float

    @property
    def normalized(self) -> float:
        return float(
            datasets.normalized_score(self.mean_return, self.ref_min_score, self.ref_max_score)
        )


def check_request(
    episodes: Any, epsilon: Any, noise: Any, reference_episodes: Any, seed: Any
) -> None:
    """Raise ConfigError for arguments out of range, before any run is opened."""
    cfg.check_int("episodes", episodes, 1, cfg.INT32_MAX, "bellman counts in 32-bit integers")
    cfg.check_int(
        "reference_episodes", reference_episodes, 1, cfg.INT32_MAX, "counted in 32-bit integers"
    )
    cfg.check_int("seed", seed, 0, 2**32 - 1, "JAX's random keys take 32-bit seeds")
    for name, value in (("epsilon", epsilon), ("noise", noise)):
        if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0, not {value!r}")
    if epsilon > 1:
        raise ConfigError(f"epsilon is a probability, at most 1, not {epsilon!r}")


def random_returns(make_env: Any, episodes: int, seed: int) -> np.ndarray:
    """Returns of the uniformly random policy (the action space's own sampler), `[episodes]`."""
    env = make_env()
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            env.reset(seed=seed + i)
            done = False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns


def greedy_returns(trained: TrainedRun, seed_index: int, episodes: int, seed: int) -> np.ndarray:
    """Returns of one seed's greedy policy, `[episodes]`, in the gymnasium twin of its env."""
    env = trained.env
    if env.make_gym is None:
        raise RunDirError(f"{env.id} has no gymnasium twin to play the policy in")
    state = jax.tree.map(lambda x: x[seed_index : seed_index + 1], trained.algo_state)
    returns, _ = evaluate_gymnasium(
        trained.info.module,
        trained.config,
        env.spec,
        env.id,
        env.make_gym,
        state,
        episodes,
        seed=seed,
    )
    return returns[0]


def collect(
    run_dir: str | Path,
    *,
    episodes: int,
    out: str | Path,
    epsilon: float = 0.0,
    noise: float = 0.0,
    stochastic: bool = False,
    random: bool = False,
    replay: bool = False,
    expert: str | Path | None = None,
    seed_index: int = 0,
    seed: int = 0,
    reference_episodes: int = 100,
    trust_env: bool = False,
) -> Collected:
    """Record `episodes` episodes of a run's policy (see the module's docstring) into a new
    dataset at `out`; returns what was written."""
    import minari

    check_request(episodes, epsilon, noise, reference_episodes, seed)
    behaviours = [epsilon > 0, noise > 0, stochastic, random, replay]
    if sum(behaviours) > 1:
        raise ConfigError("choose one of --epsilon, --noise, --stochastic, --random and --replay")
    trained = open_run(run_dir, backend="gymnasium", trust_env=trust_env)
    policy = Policy(trained, seed_index, seed)
    env, spec = trained.env, trained.env.spec
    if env.make_gym is None:
        raise RunDirError(f"{env.id} has no gymnasium twin to record the policy in")
    target, dataset_id = datasets.dataset_id_for(out)
    space = spec.action_space
    if noise > 0 and not isinstance(space, Box):
        raise ConfigError(f"--noise applies to continuous actions; {env.id}'s are discrete")
    reference = open_run(expert, backend="gymnasium", trust_env=trust_env) if expert else trained
    if reference.env.spec.obs_shape != spec.obs_shape or reference.env.id != env.id:
        raise ConfigError(
            f"the expert run {expert} was trained on {reference.env.id}, not {env.id}"
        )
    ref_max = float(
        greedy_returns(reference, 0 if expert else seed_index, reference_episodes, seed).mean()
    )
    ref_min = float(random_returns(env.make_gym, reference_episodes, seed + 1_000_003).mean())

    if replay:
        episodes_read = replay_episodes(run_dir, seed_index, trust_env)
        if not episodes_read:
            raise RunDirError(f"the replay memory of {run_dir} holds no transition yet")
        written = datasets.write(
            target,
            [datasets.Episode(**e) for e in episodes_read],
            observation_space=(gym_twin := env.make_gym()).observation_space,
            action_space=gym_twin.action_space,
            env_id=env.id if _registered(env.id) else None,
            ref_min_score=ref_min,
            ref_max_score=ref_max,
            algorithm_name=f"bellman {trained.info.name}",
            reference_episodes=reference_episodes,
            description=(
                f"the replay memory of seed {seed_index} of {trained.run_dir.path} at its "
                f"checkpoint of update {trained.update:,}: every transition it held, in episodes"
            ),
        )
        gym_twin.close()
        returns = [float(np.sum(e["rewards"], dtype=np.float64)) for e in episodes_read]
        return Collected(
            path=written,
            dataset_id=dataset_id,
            episodes=len(episodes_read),
            steps=sum(len(e["rewards"]) for e in episodes_read),
            mean_return=float(np.mean(returns)),
            ref_min_score=ref_min,
            ref_max_score=ref_max,
        )
    rng = np.random.default_rng(seed)
    gym_env = env.make_gym()
    gym_env.action_space.seed(seed)
    with datasets.datasets_root(target.parent), datasets._quiet():
        collector = minari.DataCollector(gym_env, record_infos=False)
        returns = []
        steps = 0
        try:
            for i in range(episodes):
                obs, _ = collector.reset(seed=seed + i)
                total, done = 0.0, False
                while not done:
                    action = _action(
                        policy, obs, space, rng, gym_env, epsilon, noise, stochastic, random
                    )
                    obs, reward, terminated, truncated, _ = collector.step(action)
                    total += float(reward)
                    steps += 1
                    done = terminated or truncated
                returns.append(total)
            what = "random" if random else ("stochastic" if stochastic else "greedy")
            if epsilon > 0:
                what = f"epsilon-greedy (epsilon {epsilon})"
            if noise > 0:
                what = f"greedy + Gaussian noise ({noise} half-widths)"
            written = collector.create_dataset(
                dataset_id=dataset_id,
                eval_env=env.id if _registered(env.id) else None,
                algorithm_name=f"bellman {trained.info.name}",
                author="bellman",
                author_email="-",
                code_permalink="-",
                ref_min_score=ref_min,
                ref_max_score=ref_max,
                num_episodes_average_score=reference_episodes,
                description=(
                    f"{episodes} episodes of {env.id} by the {what} policy of seed "
                    f"{seed_index} of {trained.run_dir.path} (its checkpoint of update "
                    f"{trained.update:,})"
                ),
            )
            datasets.record_references(written, ref_min, ref_max, reference_episodes)
        finally:
            collector.close()
    return Collected(
        path=target,
        dataset_id=dataset_id,
        episodes=episodes,
        steps=steps,
        mean_return=float(np.mean(returns)),
        ref_min_score=ref_min,
        ref_max_score=ref_max,
    )


def replay_episodes(run_dir: str | Path, seed_index: int, trust_env: bool) -> list[dict]:
    """The episodes in the replay memory of one seed of an off-policy run, at its newest intact
    checkpoint (`buffers.to_episodes`)."""
    from bellman import buffers
    from bellman.experiment import checkpoint as ckpt
    from bellman.experiment.policy import finite_algo, read_saved
    from bellman.experiment.rundir import RunDir
    from bellman.experiment.settings import resolve_env
    from bellman.runners.offpolicy import CompiledOffPolicy
    from bellman.runners.offpolicy_host import HostOffPolicy

    rd = RunDir.open(cfg.as_path("run_dir", run_dir))
    saved = read_saved(rd, trust_env)
    if saved.info.family != "off_policy":
        raise ConfigError(
            f"--replay reads the replay memory of an off-policy run (dqn, ddpg, td3, sac, ...); "
            f"{rd.path} is a {saved.info.name} run"
        )
    _, resolved = resolve_env(saved.settings, rd.config["backend"], None)
    s, plan, module = saved.settings, saved.plan, saved.info.module
    common = (s.seeds, s.seed, plan.total_updates, plan.chunk_updates)
    if resolved.backend == "compiled":
        assert resolved.jax_env is not None
        runner: Any = CompiledOffPolicy(module, [saved.config], resolved.jax_env, *common)
    else:
        runner = HostOffPolicy(module, saved.config, resolved, *common)
    try:
        templates = runner.checkpoint_templates()
    finally:
        runner.close()
    loaded = ckpt.load_newest(rd.checkpoints, templates, check=finite_algo)
    memory = jax.tree.map(lambda x: np.asarray(x[seed_index]), loaded.parts["runner"].buffer)
    try:
        return buffers.to_episodes(memory)
    except ValueError as exc:
        raise ConfigError(f"--replay: {exc} ({rd.path} learns from stacked frames)") from None


def _registered(env_id: str) -> bool:
    import gymnasium as gym

    try:
        gym.spec(env_id)
    except gym.error.Error:
        return False
    return True


def _action(
    policy: Policy,
    obs: Any,
    space: Any,
    rng: np.random.Generator,
    gym_env: Any,
    epsilon: float,
    noise: float,
    stochastic: bool,
    random: bool,
) -> Any:
    """The behaviour policy's action for one observation."""
    if random or (epsilon > 0 and rng.random() < epsilon):
        return gym_env.action_space.sample()
    action = policy(obs, deterministic=not stochastic)
    if noise > 0:
        assert isinstance(space, Box)
        low = np.asarray(space.low, np.float32).reshape(space.shape)
        high = np.asarray(space.high, np.float32).reshape(space.shape)
        action = np.clip(action + rng.normal(0.0, noise * (high - low) / 2.0), low, high)
    if isinstance(space, Discrete):
        return int(action)
    return np.asarray(action, np.float32)
