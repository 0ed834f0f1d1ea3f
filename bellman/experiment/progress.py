"""The live progress bar on stderr: steps, steps/s, recent return, time left."""

from __future__ import annotations

import math
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


class TrainingProgress:
    """A rich progress bar over environment steps (per seed), drawn live on a terminal; silent
    when disabled or when stderr is not a terminal (a log file gets no bar)."""

    def __init__(self, total_steps: int, description: str, enabled: bool = True):
        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self._total = total_steps
        self._description = description

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
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
        return self

    def status(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, ret=text)

    def update(self, step: int, steps_per_s: float, recent_return: float) -> None:
        if self._progress is None:
            return
        ret = "return --" if not math.isfinite(recent_return) else f"return {recent_return:8.2f}"
        self._progress.update(
            self._task, completed=step, rate=f"{steps_per_s:,.0f} steps/s", ret=ret
        )

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
