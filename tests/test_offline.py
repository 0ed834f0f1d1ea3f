"""Datasets (Minari's format, written and read back), `bellman collect`, the offline runner, and
behaviour cloning: its loss on hand numbers, learning the probes, refusals, resume after SIGKILL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman import datasets
from bellman.algos import bc
from bellman.envs.spaces import Box, Discrete, EnvSpec
from bellman.errors import ConfigError
from tests.conftest import assert_resume_is_exact, run_cli


def episode(obs: list, actions: list, rewards: list, end: str) -> datasets.Episode:
    """An episode of T steps: T + 1 observations, its last step terminated or truncated."""
    t = len(actions)
    return datasets.Episode(
        observations=np.asarray(obs, np.float32),
        actions=np.asarray(actions),
        rewards=np.asarray(rewards, np.float64),
        terminations=np.asarray([end == "terminated" and i == t - 1 for i in range(t)]),
        truncations=np.asarray([end == "truncated" and i == t - 1 for i in range(t)]),
    )


def write_probe(out: Path, episodes: list[datasets.Episode], discrete: bool = True) -> Path:
    obs_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = (
        gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    )
    return datasets.write(
        out,
        episodes,
        observation_space=obs_space,
        action_space=action_space,
        env_id=None,
        ref_min_score=0.5,
        ref_max_score=1.0,
        algorithm_name="hand",
        description="a test",
    )


def obs_action_dataset(out: Path, n: int = 200, seed: int = 0) -> Path:
    """probe/ObsAction-v0's one-step episodes with the right action: 1 where the observation is
    +1, 0 where it is -1."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], n)
    episodes = [episode([[s], [s]], [int(s > 0)], [1.0], "terminated") for s in signs]
    return write_probe(out, episodes)


def test_a_dataset_written_and_read_back_equals_the_transitions(tmp_path: Path) -> None:
    """Two episodes, one terminated and one truncated: read back as transitions (s, a, r, s')
    with the flags kept apart, the returns and the reference scores; minari reads the same
    directory by its id."""
    first = episode([[0.0], [1.0], [2.0]], [1, 0], [1.0, 2.0], "terminated")
    second = episode([[5.0], [6.0], [7.0], [8.0]], [0, 1, 1], [0.5, 0.5, -1.0], "truncated")
    path = write_probe(tmp_path / "hand", [first, second])
    assert path == tmp_path / "hand-v0"
    data = datasets.read(path)
    t = data.transitions
    np.testing.assert_array_equal(t.obs[:, 0], [0, 1, 5, 6, 7])
    np.testing.assert_array_equal(t.next_obs[:, 0], [1, 2, 6, 7, 8])
    np.testing.assert_array_equal(t.action, [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(t.reward, [1, 2, 0.5, 0.5, -1])
    np.testing.assert_array_equal(t.terminated, [False, True, False, False, False])
    np.testing.assert_array_equal(t.truncated, [False, False, False, False, True])
    np.testing.assert_array_equal(data.episode_returns, [3.0, 0.0])
    assert (data.ref_min_score, data.ref_max_score) == (0.5, 1.0)
    np.testing.assert_allclose(data.normalized([0.75, 1.0]), [50.0, 100.0])
    assert datasets.read(path / "data").path == path  # the data/ inside names it too

    import minari

    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path)
    try:
        loaded = minari.load_dataset("hand-v0")
        assert loaded.total_episodes == 2 and loaded.total_steps == 5
    finally:
        del os.environ["MINARI_DATASETS_PATH"]


def test_a_dataset_that_does_not_describe_its_spaces_is_refused(tmp_path: Path) -> None:
    """Without its spaces, Minari would make the env its metadata names (importing code): such
    a dataset is refused before Minari opens it."""
    path = obs_action_dataset(tmp_path / "probe", n=4)
    metadata_file = path / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    del metadata["observation_space"]
    metadata["env_spec"] = json.dumps({"id": "Evil-v0", "entry_point": "evil:Env"})
    metadata_file.write_text(json.dumps(metadata))
    with pytest.raises(datasets.DatasetError, match="lacks observation_space"):
        datasets.read(path)
    with pytest.raises(datasets.DatasetError, match="no dataset at"):
        datasets.read(tmp_path / "missing")
    with pytest.raises(datasets.DatasetError, match="exists already"):
        obs_action_dataset(tmp_path / "probe", n=4)


def test_the_cloning_loss_on_hand_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cross-entropy: logits (0, ln 3) give the second action 3/4, so its loss is ln(4/3), the
    first's ln 4; mean squared error: the squared distances summed over action dimensions."""
    discrete = EnvSpec("hand", (1,), "float32", Discrete(2), 1)
    logits = jnp.asarray([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    monkeypatch.setattr(bc, "output", lambda *args: logits)
    loss, metrics = bc.loss(
        None, bc.BCConfig(), discrete, None, jnp.zeros((2, 1)), jnp.array([1, 0])
    )
    np.testing.assert_allclose(loss, (np.log(4 / 3) + np.log(4)) / 2, rtol=1e-6)
    np.testing.assert_allclose(metrics["accuracy"], 0.5)

    box = EnvSpec("hand", (1,), "float32", Box((2,), (-1.0, -1.0), (1.0, 1.0)), 1)
    mu = jnp.asarray([[0.5, -0.5], [0.0, 0.25]])
    monkeypatch.setattr(bc, "output", lambda *args: mu)
    action = jnp.asarray([[0.0, 0.0], [0.0, -0.25]])
    loss, _ = bc.loss(None, bc.BCConfig(), box, None, jnp.zeros((2, 1)), action)
    np.testing.assert_allclose(loss, ((0.25 + 0.25) + (0.0 + 0.25)) / 2, rtol=1e-6)


def test_bc_clones_the_observation_dependent_action(tmp_path: Path) -> None:
    """From 200 one-step episodes of the right action, the cloned policy is right in every
    episode of probe/ObsAction-v0 (return 1), for every seed."""
    path = obs_action_dataset(tmp_path / "obs-action")
    run = bellman.train(
        "bc", "probe/ObsAction-v0", dataset=path, steps=300, seeds=2, evals=0,
        learning_rate=1e-2, hidden_sizes=(16,), out=tmp_path / "run", progress=False,
    )  # fmt: skip
    assert run.summary["final_return_per_seed"] == [1.0, 1.0]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["settings"]["dataset"] == str(path.resolve())  # for a resume from elsewhere
    last = run.metrics[-2]
    assert min(last["accuracy"]) == 1.0 and max(last["bc_loss"]) < 0.1


def test_bc_regresses_the_continuous_optimum(tmp_path: Path) -> None:
    """probe/ContinuousAction-v0 (its observation is 1) rewards actions near 0.5: cloned from
    a dataset of 0.5 with noise, the greedy action is within 0.05 of it."""
    rng = np.random.default_rng(1)
    episodes = [
        episode([[1.0], [1.0]], [[float(np.clip(0.5 + 0.05 * rng.normal(), -1, 1))]], [1.0],
                "terminated")
        for _ in range(100)
    ]  # fmt: skip
    path = write_probe(tmp_path / "continuous", episodes, discrete=False)
    run = bellman.train(
        "bc", "probe/ContinuousAction-v0", dataset=path, steps=300, evals=0,
        learning_rate=1e-2, hidden_sizes=(16,), out=tmp_path / "run", progress=False,
    )  # fmt: skip
    policy = bellman.load(tmp_path / "run")
    assert abs(float(policy(np.ones(1, np.float32))[0]) - 0.5) < 0.05
    assert run.summary["final_return_mean"] > -0.01


def test_what_an_offline_run_refuses(tmp_path: Path) -> None:
    path = obs_action_dataset(tmp_path / "probe", n=4)
    with pytest.raises(ConfigError, match="learns from a dataset: give --dataset"):
        bellman.train("bc", "probe/ObsAction-v0", steps=10, progress=False, out=tmp_path / "a")
    with pytest.raises(ConfigError, match="--dataset is for the offline algorithms"):
        bellman.train("ppo", "probe/ObsAction-v0", dataset=path, progress=False)
    with pytest.raises(datasets.DatasetError, match=r"observations of shape \(1,\), and "):
        bellman.train("bc", "CartPole-v1", dataset=path, progress=False, out=tmp_path / "b")
    with pytest.raises(datasets.DatasetError, match="no dataset at"):
        bellman.train("bc", "CartPole-v1", dataset=tmp_path / "nothing", progress=False)
    result = run_cli("train", "bc", "--env", "CartPole-v1", "--dataset", str(tmp_path / "x"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no dataset at" in result.stderr


def test_collect_records_a_trained_policy_with_its_reference_returns(tmp_path: Path) -> None:
    """`bellman collect` plays a run's greedy policy in gymnasium through Minari's DataCollector:
    the dataset holds the episodes asked for, the random policy's and the expert's mean returns,
    and `bellman list datasets` shows it; bad requests get one sentence."""
    run = run_cli(
        "train", "ppo", "--env", "CartPole-v1", "--steps", "20480", "--evals", "0",
        "--eval-episodes", "2", "--out", str(tmp_path / "ppo"), "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = tmp_path / "datasets" / "cartpole-greedy"
    result = run_cli(
        "collect", str(tmp_path / "ppo"), "--episodes", "3", "--out", str(out),
        "--reference-episodes", "5", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    data = datasets.read(summary["path"])
    assert data.episodes == 3 and len(data.transitions) == summary["steps"]
    assert data.env_id == "CartPole-v1"
    np.testing.assert_allclose(data.episode_returns.mean(), summary["mean_return"])
    assert 5 < data.ref_min_score < 50 < data.ref_max_score  # random, then the trained policy
    assert data.transitions.terminated.sum() + data.transitions.truncated.sum() == 3
    listed = run_cli("list", "datasets", cwd=tmp_path)
    assert "cartpole-greedy-v0" in listed.stdout and "3 episodes" in listed.stdout
    for bad, why in (
        (["--epsilon", "2"], "epsilon is a probability"),
        (["--noise", "0.1"], "--noise applies to continuous actions"),
        (["--out", str(out) + "-v0"], "exists already"),
        (["--replay"], "--replay reads the replay memory of an off-policy run"),
        (["--replay", "--random"], "not allowed with argument"),
    ):
        args = ["collect", str(tmp_path / "ppo"), "--out", str(tmp_path / "other"), *bad]
        failed = run_cli(*args)
        assert failed.returncode != 0 and why in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr


def test_collect_replay_writes_an_off_policy_runs_memory(tmp_path: Path) -> None:
    """`--replay` (D4RL's medium-replay): the replay memory at the run's newest checkpoint,
    every transition it stored, as Pendulum's 200-step episodes (each truncated)."""
    run = bellman.train(
        "sac", "Pendulum-v1", steps=1000, evals=0, eval_episodes=1, learning_starts=200,
        hidden_sizes=(32, 32), out=tmp_path / "sac", progress=False,
    )  # fmt: skip
    assert run.summary["final_step"] == 1000
    result = run_cli(
        "collect", str(tmp_path / "sac"), "--replay", "--out", str(tmp_path / "replay"),
        "--reference-episodes", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = datasets.read(json.loads(result.stdout)["path"])
    assert data.episodes == 5 and len(data.transitions) == 1000
    assert data.transitions.truncated.sum() == 5 and not data.transitions.terminated.any()
    starts = data.transitions.obs[1:]
    ends = data.transitions.next_obs[:-1]
    continuing = ~data.transitions.truncated[:-1]
    np.testing.assert_array_equal(starts[continuing], ends[continuing])  # s' is the next s
    assert np.isfinite([data.ref_min_score, data.ref_max_score]).all()
    assert data.metadata["num_episodes_average_score"] == 3


def test_resume_after_sigkill_continues_exactly(tmp_path: Path) -> None:
    """The networks, optimiser and key come back, and the dataset is read again from the path
    config.json records: the resumed run ends bit for bit where an uninterrupted one ends."""
    path = obs_action_dataset(tmp_path / "probe")
    args = [
        "train", "bc", "--env", "probe/ObsAction-v0", "--dataset", str(path), "--steps", "40000",
        "--seeds", "2", "--hidden-sizes", "32", "--log-every", "500", "--checkpoint-every",
        "2000", "--evals", "0", "--eval-episodes", "1", "--quiet",
    ]  # fmt: skip
    assert_resume_is_exact(args, "bc", tmp_path, 2000, 40000)


@pytest.mark.parametrize("buffer_size", [200, 26])
def test_a_replay_memory_reads_back_as_the_episodes_it_stored(buffer_size: int) -> None:
    """Two envs' steps stored with `buffers.add` (episodes ending by termination or truncation
    at random), read back with `buffers.to_episodes`: each env's transitions in the order they
    were stored, flags and all, every one the ring holds (all of them, or with 13 transitions
    per env a recent stretch, the ring having wrapped); the episode running at the end is cut
    there, marked truncated, and every episode read ends."""
    from bellman import buffers

    rng = np.random.default_rng(3)
    envs, steps = 2, 60
    buffer = buffers.init(buffer_size, envs, jnp.zeros((1,)), jnp.zeros((), jnp.int32))
    obs = 1000.0 * np.arange(envs, dtype=np.float32)[:, None]  # env e's: 1000 e + t, or minus
    buffer = buffers.start(buffer, jnp.asarray(obs))
    truth: list[list[tuple]] = [[] for _ in range(envs)]  # per env: (s, a, r, s', term, trunc)
    for t in range(1, steps + 1):
        action = rng.integers(0, 3, envs)
        reward = rng.normal(size=envs).astype(np.float32)
        end = rng.random(envs)
        terminated, truncated = end < 0.1, (end >= 0.1) & (end < 0.2)
        final = (1000.0 * np.arange(envs) + t).astype(np.float32)[:, None]
        done = (terminated | truncated)[:, None]
        for e in range(envs):
            truth[e].append(
                (obs[e, 0], action[e], reward[e], final[e, 0], terminated[e], truncated[e])
            )
        buffer = buffers.add(
            buffer, jnp.asarray(action), jnp.asarray(reward), jnp.asarray(terminated),
            jnp.asarray(truncated), jnp.asarray(final), jnp.asarray(np.where(done, -final, final)),
        )  # fmt: skip
        obs = np.where(done, -final, final)
    episodes = buffers.to_episodes(jax.device_get(buffer))
    read: list[list[tuple]] = [[] for _ in range(envs)]
    for ep in episodes:
        assert ep["terminations"][-1] or ep["truncations"][-1]  # every episode ends
        assert not (ep["terminations"][:-1] | ep["truncations"][:-1]).any()
        e = int(abs(ep["observations"][0, 0]) // 1000)
        for t in range(len(ep["actions"])):
            read[e].append(
                (ep["observations"][t, 0], ep["actions"][t], ep["rewards"][t],
                 ep["observations"][t + 1, 0], ep["terminations"][t], ep["truncations"][t])
            )  # fmt: skip
    keep = buffers.transitions_per_env(buffer_size, envs)
    for e in range(envs):
        expected = truth[e][-len(read[e]) :]
        last = expected[-1]
        expected[-1] = (*last[:5], last[5] or not last[4])  # the cut at the end
        # a ring cut mid-episode starts a stretch of its own: its first step's flags are
        # the stored ones, so the stretch compares equal step by step
        assert read[e] == expected
        assert len(read[e]) == steps if keep >= steps else keep - 2 <= len(read[e]) <= keep + 1
