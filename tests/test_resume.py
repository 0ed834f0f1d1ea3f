"""A run killed with SIGKILL and resumed ends bit for bit where an uninterrupted run ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bellman.experiment import checkpoint as ckpt
from bellman.experiment.policy import open_run
from tests.conftest import ROOT, kill_after_checkpoint, run_cli

ARGS = [
    "train", "ppo", "--env", "CartPole-v1", "--seeds", "2", "--steps", "65536",
    "--num-envs", "4", "--log-every", "1024", "--checkpoint-every", "4096",
    "--evals", "0", "--eval-episodes", "2", "--quiet",
]  # fmt: skip


def final_leaves(run_dir: Path) -> list[np.ndarray]:
    update = ckpt.list_checkpoints(run_dir / "checkpoints")[-1][0]
    trained = open_run(run_dir)
    assert trained.update == update == 128
    return [np.asarray(x) for x in jax.tree.leaves(trained.algo_state)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    whole = tmp_path_factory.mktemp("resume") / "whole"
    result = run_cli(*ARGS, "--out", str(whole))
    assert result.returncode == 0, result.stderr
    return whole


def assert_resumed_equals_uninterrupted(resumed: Path, whole: Path) -> None:
    for a, b in zip(final_leaves(resumed), final_leaves(whole), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    summary_r = json.loads((resumed / "summary.json").read_text())
    summary_w = json.loads((whole / "summary.json").read_text())
    assert summary_r["final_return_per_seed"] == summary_w["final_return_per_seed"]
    assert summary_r["resumed"] and not summary_w["resumed"]
    # the metrics log holds each chunk once, in order
    records = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    updates_logged = [r["update"] for r in records if "episode_return" in r]
    assert updates_logged == sorted(set(updates_logged)) and updates_logged[-1] == 128


def test_resume_after_sigkill_equals_uninterrupted(tmp_path: Path, uninterrupted: Path) -> None:
    killed = tmp_path / "killed"
    last = kill_after_checkpoint(ARGS, killed, 24)  # past the first checkpoints
    assert 24 <= last < 128, f"killed mid-way, at update {last}"
    assert not (killed / "summary.json").exists()

    resumed = run_cli("train", "ppo", "--resume", str(killed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == str(killed)
    assert_resumed_equals_uninterrupted(killed, uninterrupted)


def test_sigterm_saves_exits_143_and_resumes_bit_for_bit(
    tmp_path: Path, uninterrupted: Path
) -> None:
    """What a batch scheduler or `kill` does: SIGTERM stops the run at its next chunk with a
    checkpoint, the exit code is the shell's 128 + 15, and the resumed run ends exactly where an
    uninterrupted one does."""
    out = tmp_path / "terminated"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bellman", *ARGS, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        u >= 8 for u, _ in ckpt.list_checkpoints(out / "checkpoints")
    ):
        assert proc.poll() is None, "the run ended before SIGTERM"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert f"continue it with bellman train ppo --resume {out}" in stderr
    saved = ckpt.list_checkpoints(out / "checkpoints")[-1][0]
    assert 8 <= saved < 128, f"stopped mid-way, at update {saved}"
    assert not (out / "summary.json").exists()

    resumed = run_cli("train", "ppo", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_resumed_equals_uninterrupted(out, uninterrupted)


def test_interrupt_saves_and_resume_finishes_on_the_host_backend(tmp_path: Path) -> None:
    out = tmp_path / "host"
    args = [
        "train", "ppo", "--env", "CartPole-v1", "--backend", "gymnasium", "--steps", "40960",
        "--log-every", "512", "--evals", "0", "--eval-episodes", "2", "--quiet",
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "bellman", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "metrics.jsonl").is_file():
        time.sleep(0.01)
    while time.time() < deadline and len((out / "metrics.jsonl").read_text().splitlines()) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "continue it with bellman train ppo --resume" in stderr
    saved = ckpt.list_checkpoints(out / "checkpoints")[-1][0]
    assert 0 < saved < 80
    resumed = run_cli("train", "ppo", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] and summary["steps"] == 40960
