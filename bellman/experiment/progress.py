"""Training progress on stderr: a live bar on a terminal, plain lines everywhere else.

On a terminal (or in Jupyter) rich draws a live bar: steps, steps/s, recent return, time elapsed
and left. Under nohup, a batch scheduler or CI, stderr is a file or a pipe, where a live bar shows
nothing until the run ends; there a plain line is printed instead, at the start, every
`BELLMAN_PROGRESS_INTERVAL` seconds (default 30) and when training ends:

    ppo CartPole-v1 x8: step 122,880/500,000 (24.6%), 41,210 steps/s, return 187.32,
        elapsed 0:00:12, left 0:00:31                               (one line, folded here)

Steps and steps/s count one seed's environment steps, as the bar does; time left is the steps
still to go at the average rate since training started (after compiling).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bellman.errors import ConfigError

INTERVAL_VARIABLE = "BELLMAN_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0


def line_interval() -> float:
    """Seconds between plain progress lines: $BELLMAN_PROGRESS_INTERVAL, else 30."""
    text = os.environ.get(INTERVAL_VARIABLE)
    if text is None or not text.strip():
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{INTERVAL_VARIABLE} must be a number of seconds >= 0, not '{text}'")
    return value


def clock(seconds: float) -> str:
    """0:01:05 for 65 seconds."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class TrainingProgress:
    """Progress over environment steps (per seed): a rich bar on a terminal, plain lines at a
    steady interval when stderr is not a terminal, nothing when disabled."""

    def __init__(self, total_steps: int, description: str, enabled: bool = True):
        self.console = Console(stderr=True)
        interactive = self.console.is_terminal or self.console.is_jupyter
        self.mode = "off" if not enabled else "bar" if interactive else "lines"
        self._interval = line_interval() if self.mode == "lines" else DEFAULT_INTERVAL_S
        self._progress: Progress | None = None
        self._task: Any = None
        self._total = total_steps
        self._description = description
        self._started: tuple[float, int] | None = None  # (time, step) of the first update
        self._last_line = -math.inf
        self._ended = False

    def __enter__(self) -> TrainingProgress:
        if self.mode == "bar":
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[ret]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
                refresh_per_second=8,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                self._description, total=self._total, rate="", ret="compiling..."
            )
        self._say("compiling...")
        return self

    def status(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, ret=text)
        self._say(text)

    def update(self, step: int, steps_per_s: float, recent_return: float) -> None:
        ret = "return --" if not math.isfinite(recent_return) else f"return {recent_return:8.2f}"
        if self._progress is not None:
            self._progress.update(
                self._task, completed=step, rate=f"{steps_per_s:,.0f} steps/s", ret=ret
            )
        if self.mode != "lines":
            return
        now = time.monotonic()
        if self._started is None:
            self._started = (now, step)
        ended = step >= self._total and not self._ended
        if now - self._last_line < self._interval and not ended:
            return
        self._ended |= ended
        self._last_line = now
        begin, first_step = self._started
        elapsed, done = now - begin, step - first_step
        where = f"step {step:,}/{self._total:,} ({100 * step / max(self._total, 1):.1f}%)"
        if done <= 0:
            self._say(f"{where}, training")
            return
        left = clock((self._total - step) * elapsed / done)
        self._say(
            f"{where}, {steps_per_s:,.0f} steps/s, {' '.join(ret.split())}, "
            f"elapsed {clock(elapsed)}, left {left}"
        )

    def _say(self, text: str) -> None:
        if self.mode == "lines":
            print(f"{self._description}: {text}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
