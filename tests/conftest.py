"""Shared fixtures: one compilation cache per test session, shared with CLI subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Identical programs compiled by different tests (and subprocesses) compile once."""
    path = tmp_path_factory.mktemp("bellman-cache")
    os.environ["BELLMAN_CACHE_DIR"] = str(path)
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
