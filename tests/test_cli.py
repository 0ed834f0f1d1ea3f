"""The command line: a real run and its directory, evaluation, one clear sentence per mistake."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bellman.algos import ppo
from bellman.config import field_docs
from tests.conftest import run_cli

SMALL = ["--steps", "4096", "--eval-episodes", "3", "--evals", "2", "--num-envs", "4"]


# the plain progress lines a run prints when stderr is not a terminal (bellman.experiment.progress)
PROGRESS = re.compile(r"^\S+ \S+ x\d+: (compiling\.\.\.|evaluating\.\.\.|step [\d,]+/)")


def assert_one_sentence_error(result, *fragments: str, code: int = 2) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not PROGRESS.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bellman: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    result = run_cli(
        "train", "ppo", "--env", "CartPole-v1", "--seeds", "2", "--out", str(out), *SMALL
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out), "the last line is the run dir"
    return out


def test_run_directory_has_everything(run_dir: Path) -> None:
    for name in ("config.json", "metrics.jsonl", "learning_curve.png", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "checkpoints").glob("update_*.ckpt"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "ppo" and config["config"]["num_envs"] == 4
    assert config["versions"]["jax"] and "train ppo" in config["command"]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == sorted(steps) and steps[-1] == 4096
    assert len(records[0]["episode_return"]) == 2, "per-seed values"
    assert any("eval_return" in r for r in records)


def test_summary_fields(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    expected = {
        "algo": str,
        "env": str,
        "backend": str,
        "steps": int,
        "seeds": int,
        "final_return_mean": float,
        "final_return_per_seed": list,
        "wall_s": float,
        "compile_s": float,
        "steps_per_s": float,
        "run_dir": str,
    }
    for key, kind in expected.items():
        assert isinstance(summary[key], kind), key
    assert (summary["algo"], summary["env"], summary["backend"]) == (
        "ppo",
        "CartPole-v1",
        "compiled",
    )
    assert summary["steps"] == 4096 and summary["seeds"] == 2
    assert len(summary["final_return_per_seed"]) == 2
    mean = sum(summary["final_return_per_seed"]) / 2
    assert summary["final_return_mean"] == pytest.approx(mean)
    assert summary["run_dir"] == str(run_dir)
    assert 0 < summary["compile_s"] < summary["wall_s"]


def test_eval_json_and_video(run_dir: Path) -> None:
    result = run_cli("eval", str(run_dir), "--episodes", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["episodes"] == 3 and len(report["return_per_seed"]) == 2
    assert report["backend"] == "compiled" and report["return_mean"] > 0
    result = run_cli("eval", str(run_dir), "--episodes", "2", "--video", "--json")
    assert result.returncode == 0, result.stderr
    video = Path(json.loads(result.stdout)["video"])
    assert video.suffix == ".mp4" and video.stat().st_size > 1000
    assert json.loads(result.stdout)["backend"] == "compiled"


def test_eval_in_the_gymnasium_twin(run_dir: Path) -> None:
    result = run_cli("eval", str(run_dir), "--episodes", "2", "--backend", "gymnasium", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backend"] == "gymnasium"


def test_help_lists_every_config_field_with_its_docstring() -> None:
    result = run_cli("train", "ppo", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name, doc in field_docs(ppo.PPOConfig).items():
        assert "--" + name.replace("_", "-") in text, name
        assert doc[:40] in text, name


def test_list() -> None:
    algos = run_cli("list", "algos")
    assert algos.returncode == 0 and "ppo" in algos.stdout
    envs = run_cli("list", "envs")
    assert envs.returncode == 0
    assert "CartPole-v1" in envs.stdout and "LunarLander-v3" in envs.stdout


def test_unknown_algorithm() -> None:
    result = run_cli("train", "ppp", "--env", "CartPole-v1")
    assert_one_sentence_error(result, "unknown algorithm 'ppp'", "ppo")


def test_unknown_environment() -> None:
    result = run_cli("train", "ppo", "--env", "CartPol-v1")
    assert_one_sentence_error(result, "unknown environment 'CartPol-v1'", "CartPole-v1")


def test_wrong_action_space() -> None:
    result = run_cli("train", "ppo", "--env", "tests.user_envs:MultiDiscreteEnv")
    assert_one_sentence_error(result, "cannot handle the action space MultiDiscrete")


def test_inconsistent_and_out_of_range_settings() -> None:
    result = run_cli("train", "ppo", "--env", "CartPole-v1", "--num-minibatches", "3")
    assert_one_sentence_error(result, "num_minibatches (3) must divide")
    result = run_cli("train", "ppo", "--env", "CartPole-v1", "--learning-rate", "-0.1")
    assert_one_sentence_error(result, "learning_rate must be positive")
    result = run_cli("train", "ppo", "--env", "CartPole-v1", "--seeds", "0")
    assert_one_sentence_error(result, "seeds must be at least 1")
    result = run_cli("train", "ppo", "--env", "CartPole-v1", "--learning-rate", "fast")
    assert_one_sentence_error(result, "invalid float value: 'fast'")
    result = run_cli("train", "ppo")
    assert_one_sentence_error(result, "--env flag is required")


def test_not_a_run_directory(tmp_path: Path) -> None:
    assert_one_sentence_error(run_cli("eval", str(tmp_path)), "is not a bellman run", code=1)
    assert_one_sentence_error(
        run_cli("train", "ppo", "--resume", str(tmp_path / "missing")),
        "is not a directory",
        code=1,
    )


def test_existing_run_directory_is_not_overwritten(run_dir: Path) -> None:
    result = run_cli("train", "ppo", "--env", "CartPole-v1", "--out", str(run_dir))
    assert_one_sentence_error(result, "already exists", "--resume", code=1)


def test_finished_run_cannot_be_resumed(run_dir: Path) -> None:
    result = run_cli("train", "ppo", "--resume", str(run_dir))
    assert_one_sentence_error(result, "has already finished", code=1)


def test_resume_refuses_new_settings(run_dir: Path) -> None:
    result = run_cli("train", "ppo", "--resume", str(run_dir), "--learning-rate", "0.1")
    assert_one_sentence_error(result, "drop --learning-rate")


def test_corrupted_checkpoints_are_named(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    older, newest = sorted((copy / "checkpoints").glob("update_*.ckpt"))[-2:]
    newest.write_bytes(newest.read_bytes()[:-50])
    result = run_cli("eval", str(copy), "--episodes", "2", "--json")
    assert result.returncode == 0, result.stderr  # the older one is intact: it is used
    assert result.stderr.strip() == (
        f"bellman: warning: checkpoint {newest} is damaged (its checksum does not match: "
        f"truncated or altered); using {older.name}"
    )
    older.write_bytes(older.read_bytes()[:-50])
    result = run_cli("eval", str(copy))
    assert_one_sentence_error(result, "no intact checkpoint", newest.name, older.name, code=1)


def test_nan_loss_stops_the_run_and_keeps_a_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "nan"
    result = run_cli(
        "train",
        "ppo",
        "--env",
        "CartPole-v1",
        "--learning-rate",
        "1e30",
        "--out",
        str(out),
        *SMALL,
    )
    assert_one_sentence_error(result, "training diverged", "NaN", "update_000000000.ckpt", code=1)
    assert (out / "checkpoints" / "update_000000000.ckpt").is_file()
    assert not (out / "summary.json").exists()


def test_user_env_trains_on_the_host_backend(tmp_path: Path) -> None:
    out = tmp_path / "corridor"
    result = run_cli(
        "train",
        "ppo",
        "--env",
        "tests.user_envs:Corridor",
        "--out",
        str(out),
        "--steps",
        "6144",
        "--evals",
        "0",
        "--eval-episodes",
        "4",
        "--quiet",
        "--learning-rate",
        "3e-3",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "gymnasium"
    # the shortest walk takes 6 steps: return 1 - 5 * 0.01
    assert summary["final_return_mean"] == pytest.approx(0.95, abs=1e-6)
