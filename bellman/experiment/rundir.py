"""The run directory: everything a `bellman train` leaves behind, in one place.

RUN_DIR/
  config.json          every resolved setting, library versions, the command line
  metrics.jsonl        one JSON record per logged chunk (per-seed values as lists)
  tensorboard/         the same metrics as TensorBoard events (tensorboardX)
  checkpoints/         update_XXXXXXXXX.ckpt, written atomically, the newest two kept
  learning_curve.png   mean and 95% interval over seeds against env steps
  summary.json         the result (see `bellman.experiment.train`)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bellman.errors import RunDirError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CURVE = "learning_curve.png"
FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on."""
    out = {"python": platform.python_version()}
    for package in ("bellman", "jax", "jaxlib", "flax", "optax", "gymnax", "gymnasium", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[package] = metadata.version(package)
    return out


def jsonable(value: Any) -> Any:
    """Numbers, arrays and containers as plain JSON values; NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(jsonable(value), f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: Path, config: dict[str, Any]):
        self.path = path
        self.config = config

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @classmethod
    def create(cls, path: Path, config: dict[str, Any]) -> RunDir:
        """A new run directory holding `config` as config.json."""
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirError(
                f"{path} already exists and is not empty; continue it with --resume {path} "
                "or choose another --out"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {path}: {exc.strerror}") from None
        record = {
            "format": FORMAT_VERSION,
            **config,
            "versions": versions(),
            "command": " ".join(sys.argv),
        }
        write_json(path / CONFIG, record)
        return cls(path, record)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory, or RunDirError if `path` is not a bellman run."""
        config_path = path / CONFIG
        if not path.is_dir():
            raise RunDirError(f"{path} is not a directory")
        if not config_path.is_file():
            raise RunDirError(f"{path} is not a bellman run (it has no {CONFIG})")
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError):
            raise RunDirError(f"{config_path} is unreadable or not valid JSON") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT_VERSION:
            raise RunDirError(f"{path} is not a bellman run of a format this version reads")
        return cls(path, config)

    def summary(self) -> dict[str, Any] | None:
        path = self.path / SUMMARY
        return json.loads(path.read_text()) if path.is_file() else None

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / SUMMARY, summary)

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.path / METRICS
        if not path.is_file():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                break  # a line cut off by a kill: everything before it is intact
        return records

    def truncate_metrics(self, after_update: int) -> None:
        """Drop records past `after_update` (a resumed run will log them again)."""
        kept = [r for r in self.read_metrics() if r.get("update", 0) <= after_update]
        path = self.path / METRICS
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, path)
