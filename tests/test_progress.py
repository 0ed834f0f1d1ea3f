"""Progress where nobody watches a terminal: plain lines on stderr at a steady interval."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bellman.errors import ConfigError
from bellman.experiment import progress
from bellman.experiment.progress import INTERVAL_VARIABLE, TrainingProgress, clock
from tests.conftest import ROOT, run_cli

LINE = re.compile(
    r"^ppo CartPole-v1 x2: step ([\d,]+)/([\d,]+) \((\d+\.\d)%\), ([\d,]+) steps/s, "
    r"return (-?\d+\.\d\d|--), elapsed (\d+:\d\d:\d\d), left (\d+:\d\d:\d\d)$"
)


def test_clock() -> None:
    assert clock(0) == "0:00:00"
    assert clock(65) == "0:01:05"
    assert clock(3 * 3600 + 7) == "3:00:07"


def test_lines_come_at_the_interval_and_at_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    monkeypatch.setenv(INTERVAL_VARIABLE, "30")
    with TrainingProgress(1000, "ppo CartPole-v1 x2") as bar:
        assert bar.mode == "lines"  # pytest's stderr is not a terminal
        for second in range(101):  # 10 steps per second after the first update
            now[0] = 100.0 + second
            bar.update(10 * second, 10.0, 21.5)
        bar.status("evaluating...")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "ppo CartPole-v1 x2: compiling..."
    assert lines[1] == "ppo CartPole-v1 x2: step 0/1,000 (0.0%), training"
    assert lines[-1] == "ppo CartPole-v1 x2: evaluating..."
    shown = [LINE.match(line) for line in lines[2:-1]]
    assert all(shown), lines
    steps = [int(m.group(1).replace(",", "")) for m in shown if m]
    assert steps == [300, 600, 900, 1000]  # every 30 s, then the last update
    at_600 = shown[1]
    assert at_600 is not None
    assert at_600.group(6) == "0:01:00" and at_600.group(7) == "0:00:40"  # 400 steps at 10/s


def test_no_lines_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    with TrainingProgress(100, "x", enabled=False) as bar:
        bar.update(100, 1.0, 1.0)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_interval_is_one_sentence(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(INTERVAL_VARIABLE, value)
    with pytest.raises(ConfigError, match=INTERVAL_VARIABLE):
        progress.line_interval()
    result = run_cli("train", "ppo", "--env", "CartPole-v1", "--out", "never-created")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"bellman: error: {INTERVAL_VARIABLE} must be a number of seconds >= 0, not '{value}'"
    )
    assert not (ROOT / "never-created").exists()


def test_cli_prints_progress_lines_to_a_log_file(tmp_path: Path) -> None:
    """`bellman train ... 2> log` (nohup, a batch job, CI): the log gets progress lines while the
    run trains, not only a result at the end."""
    log = tmp_path / "stderr.log"
    out = tmp_path / "run"
    args = ["train", "ppo", "--env", "CartPole-v1", "--seeds", "2", "--steps", "8192"]
    args += ["--num-envs", "4", "--log-every", "1024", "--evals", "0", "--eval-episodes", "2"]
    with log.open("w") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "bellman", *args, "--out", str(out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=600,
            env={**os.environ, INTERVAL_VARIABLE: "0"},
        )
    assert result.returncode == 0
    text = log.read_text()
    assert "Traceback" not in text and "\x1b[" not in text  # no traceback, no terminal codes
    lines = text.splitlines()
    assert lines[:2] == [
        "ppo CartPole-v1 x2: compiling...",
        "ppo CartPole-v1 x2: step 0/8,192 (0.0%), training",
    ]
    shown = [LINE.match(line) for line in lines[2:-1]]
    assert all(shown), text
    steps = [int(m.group(1).replace(",", "")) for m in shown if m]
    assert steps == list(range(1024, 8193, 1024))  # interval 0: one line per logged chunk
    assert lines[-1] == "ppo CartPole-v1 x2: evaluating..."
    assert result.stdout.strip().splitlines()[-1] == str(out)
