"""The run directory: everything a `bellman train` leaves behind, in one place.

RUN_DIR/
  config.json          every resolved setting, library versions, the command line
  metrics.jsonl        one JSON record per logged chunk (per-seed values as lists)
  tensorboard/         the same metrics as TensorBoard events (tensorboardX)
  checkpoints/         update_XXXXXXXXX.ckpt, written atomically, the newest two kept;
                       damaged/ holds checkpoints a resume found damaged and set aside
  learning_curve.png   mean and 95% interval over seeds against env steps
  summary.json         the result (see `bellman.experiment.train`)
  .lock                held (flock) by the one process that writes the directory; its PID

config.json and summary.json are written atomically (temporary file, fsync, rename) and checked
when read; metrics.jsonl is read line by line, a damaged line reported and skipped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np

from bellman.errors import BellmanWarning, RunDirError

try:
    import fcntl
except ImportError:  # not on a POSIX system: run directories are not locked
    fcntl = None  # type: ignore[assignment]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CURVE = "learning_curve.png"
LOCK = ".lock"
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
        self._lock: IO[str] | None = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @classmethod
    def create(cls, path: Path, config: dict[str, Any]) -> RunDir:
        """A new run directory holding `config` as config.json, locked by this process."""
        if path.exists() and (not path.is_dir() or _entries(path) - {LOCK}):
            raise RunDirError(
                f"{path} already exists and is not empty; continue it with --resume {path} "
                "or choose another --out"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {path}: {exc.strerror}") from None
        run_dir = cls(path, {})
        run_dir.lock()
        try:
            if _entries(path) - {LOCK}:  # another process got here first
                raise RunDirError(f"{path} was filled by another process while this one started")
            record = {
                "format": FORMAT_VERSION,
                **config,
                "versions": versions(),
                "command": " ".join(sys.argv),
            }
            try:
                write_json(path / CONFIG, record)
            except OSError as exc:
                raise RunDirError(f"cannot write {path / CONFIG}: {exc.strerror}") from None
        except BaseException:
            run_dir.unlock()
            raise
        run_dir.config = record
        return run_dir

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
        for key, kind in (("algo", str), ("env", str), ("backend", str)):
            if not isinstance(config.get(key), kind):
                raise RunDirError(f"{config_path} has no valid '{key}'")
        for key in ("settings", "config", "plan"):
            if not isinstance(config.get(key), dict):
                raise RunDirError(f"{config_path} has no valid '{key}'")
        return cls(path, config)

    # ----- the writer's lock -----
    def lock(self) -> None:
        """Take the directory's lock for this process, or raise RunDirError naming the process
        that holds it. The lock is the kernel's (flock): it ends with its process, however that
        ends, so a killed run leaves nothing to clean up."""
        if fcntl is None or self._lock is not None:
            return
        path = self.path / LOCK
        try:
            handle = open(path, "a+")  # noqa: SIM115 (held until unlock)
        except OSError as exc:
            raise RunDirError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirError(
                f"{self.path} is in use by another bellman process (PID {holder}); wait for it "
                "to end or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    # ----- what the run wrote -----
    def summary(self) -> dict[str, Any] | None:
        """summary.json, None if the run has not finished, RunDirError if it is damaged."""
        path = self.path / SUMMARY
        if not path.is_file():
            return None
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            summary = None
        if not isinstance(summary, dict) or "final_return_mean" not in summary:
            raise RunDirError(
                f"{path} is damaged (not a bellman summary); move it away to resume the run and "
                "write it again"
            )
        return summary

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / SUMMARY, summary)

    def read_metrics(self, report: bool = True) -> list[dict[str, Any]]:
        """The records of metrics.jsonl; a line that is not a record (cut off by a kill, or
        damaged) is skipped, never the records after it, and reported as a BellmanWarning
        (when `report`: a reader that follows one that reported says nothing)."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        records = []
        bad = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict) and isinstance(record.get("update"), int):
                    records.append(record)
                else:
                    bad.append(number)
        if bad and report:
            lines = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if bad[5:] else "")
            warnings.warn(
                f"{path}: line(s) {lines} are not metrics records and were skipped",
                BellmanWarning,
                stacklevel=2,
            )
        return records

    def truncate_metrics(self, after_update: int) -> None:
        """Keep exactly the records a run resuming from the checkpoint at `after_update` will
        not log again: the chunks up to that update (a final evaluation's record, the one
        without `episode_return`, is made again), atomically."""
        kept = [
            r
            for r in self.read_metrics(report=False)  # resume() has read and reported them
            if r["update"] < after_update or (r["update"] == after_update and "episode_return" in r)
        ]
        path = self.path / METRICS
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}
