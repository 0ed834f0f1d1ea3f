"""Metrics out of a run: one JSON line per chunk, and the same values as TensorBoard scalars."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bellman.experiment.rundir import METRICS, jsonable

PER_SEED_TAGS = ("episode_return", "eval_return")


class MetricsLogger:
    """Appends records to metrics.jsonl and writes TensorBoard events (means over seeds)."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self._file = open(run_dir / METRICS, "a")  # noqa: SIM115 - closed in close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)

    def log(self, record: dict[str, Any]) -> None:
        """`record` holds `step`, `update`, and scalars or per-seed lists of numbers."""
        self._file.write(json.dumps(jsonable(record)) + "\n")
        self._file.flush()
        step = int(record["step"])
        for name, value in record.items():
            if name in ("step", "update"):
                continue
            values = np.asarray(value, np.float64).ravel()
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                continue
            group = "eval" if name.startswith("eval_") else "train"
            self._tb.add_scalar(f"{group}/{name}", float(finite.mean()), step)
            if name in PER_SEED_TAGS and values.size > 1:
                for i, v in enumerate(values):
                    if np.isfinite(v):
                        self._tb.add_scalar(f"seeds/{name}/seed_{i}", float(v), step)

    def close(self) -> None:
        self._file.close()
        self._tb.close()
