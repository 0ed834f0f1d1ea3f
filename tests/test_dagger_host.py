"""DAgger on the gymnasium backend (`runners.dagger_host`): a run's directory and metrics, the
aggregate D against the visited states and the expert's own greedy policy, a resume after a
crash that keeps D, and the expert a gymnasium run of the same env."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import bellman
from bellman import datasets
from bellman.algos import dagger as dagger_algo
from bellman.envs import registry
from bellman.errors import ConfigError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.callbacks import Chunk
from bellman.experiment.settings import RunSettings
from bellman.experiment.train import dagger_data
from bellman.runners.dagger import Aggregate
from bellman.runners.dagger_host import HostDagger
from bellman.runners.onpolicy_host import env_seed

ENV = "Pendulum-v1"
SEEDS, ENVS, STEPS = 2, 2, 8
ROUND = ENVS * STEPS
"""States each seed plays and the expert labels in a round."""
CONFIG: dict[str, Any] = {
    "num_envs": ENVS, "num_steps": STEPS, "gradient_steps": 10, "batch_size": 16,
    "hidden_sizes": (16, 16), "aggregate_size": 256,
}  # fmt: skip
RUN: dict[str, Any] = {
    **CONFIG, "backend": "gymnasium", "seeds": SEEDS, "steps": 4 * ROUND, "evals": 0,
    "eval_episodes": 1, "log_every": ROUND, "checkpoint_every": 2 * ROUND, "progress": False,
}  # fmt: skip
"""Four rounds, a chunk each, a checkpoint every two."""


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PPO run of a few steps on gymnasium's Pendulum-v1: a poor pilot, but a greedy policy
    to label states with is all DAgger asks of it."""
    out = tmp_path_factory.mktemp("expert") / "ppo"
    bellman.train(
        "ppo", ENV, backend="gymnasium", steps=64, num_envs=2, num_steps=32,
        hidden_sizes=(16, 16), evals=0, eval_episodes=1, out=out, progress=False,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def whole(expert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host DAgger run of four rounds, uninterrupted."""
    out = tmp_path_factory.mktemp("dagger") / "whole"
    bellman.train("dagger", ENV, expert=expert, out=out, **RUN)
    return out


def host_runner(expert: Path, dataset: Path | None = None, chunk_updates: int = 1) -> HostDagger:
    """The runner `bellman train dagger --backend gymnasium` builds for RUN's settings."""
    settings = RunSettings(
        env=ENV,
        backend="gymnasium",
        seeds=SEEDS,
        expert=str(expert),
        dataset=None if dataset is None else str(dataset),
    )
    resolved = registry.resolve(ENV, "gymnasium")
    config = dagger_algo.DaggerConfig(**CONFIG)
    data = dagger_data(settings, resolved)
    return HostDagger(dagger_algo, config, resolved, SEEDS, 0, 4, chunk_updates, data=data)


def aggregate_at(run_dir: Path, update: int, runner: HostDagger) -> Aggregate:
    """D as the run's checkpoint of `update` holds it."""
    path = ckpt.path_for(run_dir / "checkpoints", update)
    parts, _ = ckpt.load(path, runner.checkpoint_templates())
    return parts["runner"].aggregate


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def demonstrations(out: Path, steps: int = 10) -> Path:
    """A dataset of one episode of Pendulum-v1 in random actions."""
    env = gym.make(ENV)
    obs = [env.reset(seed=1)[0]]
    actions = [env.action_space.sample() for _ in range(steps)]
    for action in actions:
        obs.append(env.step(action)[0])
    episode = datasets.Episode(
        observations=np.asarray(obs, np.float32),
        actions=np.asarray(actions, np.float32),
        rewards=np.zeros(steps),
        terminations=np.zeros(steps, bool),
        truncations=np.arange(steps) == steps - 1,
    )
    return datasets.write(
        out, [episode], observation_space=env.observation_space,
        action_space=env.action_space, env_id=None, ref_min_score=-1000.0, ref_max_score=0.0,
        algorithm_name="random", description="a test",
    )  # fmt: skip


def test_a_host_run_writes_its_directory_and_labels_every_step(whole: Path) -> None:
    """The usual run directory; each round labels num_envs * num_steps states per seed, with
    the expert's share halving round after round."""
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["backend"] == "gymnasium" and summary["algo"] == "dagger"
    assert len(summary["final_return_per_seed"]) == SEEDS
    assert (whole / "learning_curve.png").is_file()
    rounds = [r for r in records(whole) if "expert_labels" in r]
    assert [r["update"] for r in rounds] == [1, 2, 3, 4]
    for r in rounds:
        assert r["expert_labels"] == [float(ROUND * r["update"])] * SEEDS
        assert r["beta"] == [0.5 ** (r["update"] - 1)] * SEEDS
        assert np.isfinite(r["bc_loss"] + r["expert_action_error"]).all()
        assert "episodes" in r and "episode_return" in r


def test_the_aggregate_holds_the_visited_states_labelled_by_the_expert(
    expert: Path, tmp_path: Path
) -> None:
    """After two rounds, D holds every state each env visited, in order, each labelled with the
    expert's greedy action (its policy called directly); the first round, all the expert's
    (beta 1), replays step for step in fresh gymnasium envs. The demonstrations count as labels
    beside D."""
    demos = demonstrations(tmp_path / "demos")
    runner = host_runner(expert, demos, chunk_updates=2)
    try:
        state, result = runner.run_chunk(runner.init_state(), 0)
    finally:
        runner.close()
    assert result.updates == 2
    # the chunk's mean of the counts after each round: 10 demonstrations and 1 or 2 rounds
    np.testing.assert_array_equal(result.metrics["expert_labels"], [10 + 1.5 * ROUND] * SEEDS)
    np.testing.assert_array_equal(state.aggregate.count, [2 * ROUND] * SEEDS)
    held = slice(0, 2 * ROUND)
    obs, labels = np.asarray(state.aggregate.obs[:, held]), np.asarray(state.aggregate.action)
    policy = bellman.load(expert)
    for s in range(SEEDS):
        np.testing.assert_allclose(labels[s, held], policy(obs[s]), rtol=1e-5, atol=1e-6)
    base = env_seed(0, 0)
    for s in range(SEEDS):
        for e in range(ENVS):
            env = gym.make(ENV)
            visited, _ = env.reset(seed=base + s * ENVS + e)
            for t in range(STEPS):  # D's slot of step t of env e is t * ENVS + e
                np.testing.assert_array_equal(obs[s, t * ENVS + e], visited)
                visited, *_ = env.step(labels[s, t * ENVS + e])


def test_resume_after_a_crash_keeps_the_aggregate(
    expert: Path, whole: Path, tmp_path: Path
) -> None:
    """A run that dies right after its checkpoint at round 2 resumes with its D, round and keys:
    it ends with as many labels as the uninterrupted run, and D's first two rounds are the
    uninterrupted run's. Its envs restart (seeded from the update), so round 3 begins new
    episodes."""

    class Crash(Exception):
        pass

    def crash(chunk: Chunk) -> bool:
        if chunk.checkpoint is not None:
            raise Crash
        return True

    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        bellman.train("dagger", ENV, expert=expert, out=out, callbacks=[crash], **RUN)
    assert ckpt.list_checkpoints(out / "checkpoints")[-1][0] == 2
    resumed = bellman.resume(out, progress=False)
    assert resumed.summary["resumed"]
    labels = lambda records: [r["expert_labels"] for r in records if "expert_labels" in r]
    assert labels(resumed.metrics) == labels(records(whole))
    assert labels(resumed.metrics)[-1] == [4.0 * ROUND] * SEEDS

    runner = host_runner(expert)  # for its checkpoint templates
    runner.close()
    before, after = aggregate_at(out, 2, runner), aggregate_at(out, 4, runner)
    whole_d = aggregate_at(whole, 4, runner)
    np.testing.assert_array_equal(after.count, whole_d.count)
    two = slice(0, 2 * ROUND)
    for field in ("obs", "action"):
        kept = np.asarray(getattr(before, field))[:, two]
        np.testing.assert_array_equal(np.asarray(getattr(after, field))[:, two], kept)
        np.testing.assert_array_equal(np.asarray(getattr(whole_d, field))[:, two], kept)
    restarted = np.asarray(after.obs)[:, 2 * ROUND : 2 * ROUND + ENVS]  # round 3's first step
    base = env_seed(0, 2)
    for s in range(SEEDS):
        for e in range(ENVS):
            first, _ = gym.make(ENV).reset(seed=base + s * ENVS + e)
            np.testing.assert_array_equal(restarted[s, e], first)


def test_the_expert_of_a_gymnasium_run_is_a_gymnasium_run_of_the_same_env(
    expert: Path, tmp_path: Path
) -> None:
    compiled = tmp_path / "compiled-expert"  # the same run, as if it had trained compiled
    shutil.copytree(expert, compiled)
    record = json.loads((compiled / "config.json").read_text())
    record["backend"] = record["settings"]["backend"] = "compiled"
    (compiled / "config.json").write_text(json.dumps(record))
    with pytest.raises(
        ConfigError,
        match=f"the expert {compiled} was trained on the compiled backend; dagger on "
        "Pendulum-v1's gymnasium backend queries an expert trained on gymnasium too",
    ):
        bellman.train("dagger", ENV, expert=compiled, out=tmp_path / "a", **RUN)
    with pytest.raises(
        ConfigError, match=f"the expert {expert} was trained on Pendulum-v1, not on CartPole-v1"
    ):
        bellman.train("dagger", "CartPole-v1", expert=expert, out=tmp_path / "b", **RUN)
