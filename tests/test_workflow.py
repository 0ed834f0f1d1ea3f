"""What a Stable-Baselines3 user expects of the API: callbacks between chunks (logging, early
stopping, the best checkpoint), evaluating a policy on any env, sampling actions, training a
finished run further, rerunning a run's exact settings from a file, a JSON summary, clear help."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest

from bellman.cli import main
from bellman.errors import CheckpointError, ConfigError, EnvError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.callbacks import Chunk, EarlyStopping, KeepBest
from bellman.experiment.evaluate import evaluate
from bellman.experiment.policy import load
from bellman.experiment.train import resume, train

SMALL = dict(
    steps=8192, num_envs=4, log_every=1024, checkpoint_every=2048, evals=4, eval_episodes=4
)


@pytest.fixture(scope="module")
def with_callbacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Chunk]]:
    seen: list[Chunk] = []
    out = tmp_path_factory.mktemp("workflow") / "run"
    train(
        "ppo", "CartPole-v1", out=out, progress=False, callbacks=[seen.append, KeepBest()], **SMALL
    )  # type: ignore[arg-type]
    return out, seen


def test_callbacks_see_every_chunk_with_its_metrics(
    with_callbacks: tuple[Path, list[Chunk]],
) -> None:
    out, seen = with_callbacks
    assert [c.step for c in seen] == list(range(1024, 8193, 1024))
    assert all(c.run_dir == out and c.total_steps == 8192 for c in seen)
    assert all(np.shape(c.metrics["episode_return"]) == (1,) for c in seen)
    evaluated = [c for c in seen if "eval_return" in c.metrics]
    assert len(evaluated) == 3  # 4 evaluations: 3 during training, the last one after it
    assert {c.checkpoint is not None for c in seen} == {True, False}


def test_keep_best_keeps_the_best_evaluation_and_loads(
    with_callbacks: tuple[Path, list[Chunk]],
) -> None:
    out, seen = with_callbacks
    best = json.loads((out / "best" / "best.json").read_text())
    means = [c.mean("eval_return") for c in seen if "eval_return" in c.metrics]
    assert best["metric"] == "eval_return" and best["value"] == max(means)
    policy = load(out, checkpoint="best")
    assert policy.run.update * 512 == best["step"]
    code = main(["eval", str(out), "--checkpoint", "best", "--episodes", "2", "--json"])
    assert code == 0


def test_early_stopping_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    stop = EarlyStopping(metric="episode_return", threshold=0.0)  # any return reaches it
    run = train(
        "ppo", "CartPole-v1", out=tmp_path / "run", progress=False, callbacks=[stop], **SMALL
    )  # type: ignore[arg-type]
    assert run.summary["final_step"] == 1024 < run.summary["steps"]
    assert run.summary["stopped_early"].startswith("episode_return ")
    assert "reached 0" in run.summary["stopped_early"]
    assert ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1][0] == 2


def test_a_callback_returning_false_stops_and_bad_callbacks_are_refused(tmp_path: Path) -> None:
    def enough(chunk: Chunk) -> bool:
        return chunk.step < 2048

    run = train(
        "ppo", "CartPole-v1", out=tmp_path / "run", progress=False, callbacks=[enough], **SMALL
    )  # type: ignore[arg-type]
    assert run.summary["final_step"] == 2048
    assert run.summary["stopped_early"] == "the callback enough returned False"
    with pytest.raises(ConfigError, match="callbacks must be a list of callables"):
        train("ppo", "CartPole-v1", callbacks=[1], progress=False)  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="needs a threshold, a patience"):
        EarlyStopping()
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        load(tmp_path / "run", checkpoint="best")


def test_a_signal_during_a_callback_saves_that_chunk_before_stopping(tmp_path: Path) -> None:
    """SIGTERM arriving while a callback runs (after the chunk's checkpoint was or was not due)
    stops the run with a checkpoint at that chunk, not the one before it."""
    import os
    import signal

    from bellman.experiment.train import Interrupted

    def terminate(chunk: Chunk) -> None:
        if chunk.step == 3072:  # checkpoints are due every 2048 steps: none at this chunk
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted, match="stopped by SIGTERM at step 3,072"):
        train(
            "ppo",
            "CartPole-v1",
            out=tmp_path / "run",
            progress=False,
            callbacks=[terminate],
            **SMALL,
        )  # type: ignore[arg-type]
    assert ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1][0] * 512 == 3072
    code = main(["train", "ppo", "--resume", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["resumed"]


def test_a_finished_run_trains_further_with_steps(
    with_callbacks: tuple[Path, list[Chunk]], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(with_callbacks[0], out)
    before = json.loads((out / "summary.json").read_text())
    code = main(["train", "ppo", "--resume", str(out), "--steps", "12288", "--quiet"])
    assert code == 0
    after = json.loads((out / "summary.json").read_text())
    assert after["steps"] == 12288 and after["resumed"]
    assert json.loads((out / "summary-8192.json").read_text()) == before
    config = json.loads((out / "config.json").read_text())
    assert config["plan"]["total_updates"] == 24 and config["settings"]["steps"] == 12288
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    updates = [r["update"] for r in records if "episode_return" in r]
    assert updates == list(range(2, 25, 2)), "each chunk once, the old final evaluation gone"
    assert ckpt.list_checkpoints(out / "checkpoints")[-1][0] == 24
    with pytest.raises(ConfigError, match="more than the 12,288 steps"):
        resume(out, steps=12288, progress=False)


def test_a_run_reruns_exactly_from_its_config_json(
    with_callbacks: tuple[Path, list[Chunk]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = with_callbacks[0]
    out = tmp_path / "rerun"
    code = main(
        ["train", "ppo", "--config", str(source / "config.json"), "--out", str(out), "--json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)  # --json: one object, the run dir in it
    assert summary["run_dir"] == str(out)
    original = json.loads((source / "summary.json").read_text())
    assert summary["final_return_per_seed"] == original["final_return_per_seed"]
    a = ckpt.read_arrays(ckpt.list_checkpoints(source / "checkpoints")[-1][1])["algo"]
    b = ckpt.read_arrays(ckpt.list_checkpoints(out / "checkpoints")[-1][1])["algo"]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_yaml_config_with_flags_over_it(tmp_path: Path) -> None:
    file = tmp_path / "ppo.yaml"
    file.write_text("env: CartPole-v1\nsteps: 2048\nnum_envs: 2\nlearning_rate: 0.001\nevals: 0\n")
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "ppo",
            "--config",
            str(file),
            "--learning-rate",
            "0.002",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["learning_rate"] == 0.002 and config["config"]["num_envs"] == 2
    file.write_text("algo: dqn\nenv: CartPole-v1\n")
    assert main(["train", "ppo", "--config", str(file)]) == 2
    file.write_text("env: CartPole-v1\nlearnin_rate: 0.1\n")
    assert main(["train", "ppo", "--config", str(file)]) == 2


def test_evaluate_a_policy_on_envs_you_name(with_callbacks: tuple[Path, list[Chunk]]) -> None:
    policy = load(with_callbacks[0])
    compiled = evaluate(policy, "CartPole-v1", episodes=4)
    assert compiled["episodes"] == 4 and len(compiled["returns"]) == 4
    instance = gym.make("CartPole-v1")
    host = evaluate(policy, instance, episodes=3)
    assert len(host["returns"]) == 3 and host["env"] == "CartPole-v1"
    sampled = evaluate(policy, "CartPole-v1", episodes=3, deterministic=False)
    assert not sampled["deterministic"] and len(sampled["returns"]) == 3
    with pytest.raises(EnvError, match="cannot act in 'Pendulum-v1'"):
        evaluate(policy, "Pendulum-v1")
    with pytest.raises(ConfigError, match=r"evaluate\(bellman.load\(run_dir\), env\)"):
        evaluate(with_callbacks[0], "CartPole-v1")


def test_a_policy_samples_with_its_own_key_or_a_given_one(
    with_callbacks: tuple[Path, list[Chunk]],
) -> None:
    policy = load(with_callbacks[0])
    obs = np.zeros((256, 4), np.float32)
    greedy = policy(obs)
    assert (policy(obs) == greedy).all(), "deterministic by default"
    first, second = policy(obs, deterministic=False), policy(obs, deterministic=False)
    assert not (first == second).all(), "the policy's own key advances"
    key = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(
        policy(obs, deterministic=False, key=key), policy(obs, deterministic=False, key=key)
    )
    with pytest.raises(EnvError, match="observations of shape \\(4,\\)"):
        policy(np.zeros(3))


def test_help_shows_what_is_required_each_default_once_and_the_presets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["train", "dqn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--env ENV Required (unless --resume or --config gives it)" in text
    assert "(default: None)" not in text
    assert all(flag.count("default:") <= 1 for flag in text.split(" --")), "one default each"
    assert "one of atari, minatar" in text
    assert "(default: 0.00025; preset atari: 0.0001, minatar: 0.00025)" in text
    with pytest.raises(SystemExit):
        main(["train", "a2c", "--help"])
    assert "a2c has no presets" in " ".join(capsys.readouterr().out.split())
