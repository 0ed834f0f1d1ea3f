"""Shared fixtures: one compilation cache per test session, shared with CLI subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bellman

# What the `bellman` command and `bellman.train` do first: in-process tests run with the same
# XLA flags (one CPU device per core) and threefry lowering as the command line.
bellman.configure()

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Identical programs compiled by different tests (and subprocesses) compile once."""
    path = tmp_path_factory.mktemp("bellman-cache")
    os.environ["BELLMAN_CACHE_DIR"] = str(path)
    # the cache's key (bellman.runners.programs), kept out of the user's home as well
    os.environ["BELLMAN_CACHE_KEY_FILE"] = str(tmp_path_factory.mktemp("bellman-key") / "key")
    return path


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m bellman ARGS...` in a subprocess, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "bellman", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120"},
    )


def kill_after_checkpoint(args: list[str], out: Path, min_update: int) -> int:
    """Start `bellman ARGS --out OUT`, kill it with SIGKILL once a checkpoint at or past update
    `min_update` exists, and return the newest checkpoint's update."""
    from bellman.experiment import checkpoint as ckpt

    proc = subprocess.Popen(
        [sys.executable, "-m", "bellman", *args, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            updates = [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")]
            if updates and updates[-1] >= min_update:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    return ckpt.list_checkpoints(out / "checkpoints")[-1][0]


def assert_resume_is_exact(
    args: list[str], algo: str, tmp_path: Path, first: int, steps: int
) -> None:
    """Kill `bellman train ARGS` after its checkpoint at `first`, resume it, and check that it
    ends bit for bit where an uninterrupted run of the same command ends."""
    from bellman.experiment import checkpoint as ckpt

    killed, whole = tmp_path / "killed", tmp_path / "whole"
    last = kill_after_checkpoint(args, killed, first)
    assert first <= last < steps, last
    resumed = run_cli("train", algo, "--resume", str(killed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = run_cli(*args, "--out", str(whole))
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    last_of = lambda run: ckpt.read_arrays(ckpt.list_checkpoints(run / "checkpoints")[-1][1])
    killed_state, whole_state = last_of(killed), last_of(whole)
    assert set(killed_state) == set(whole_state)
    for part in killed_state:
        for a, b in zip(killed_state[part], whole_state[part], strict=True):
            np.testing.assert_array_equal(a, b)
    assert json.loads((killed / "summary.json").read_text())["resumed"]
