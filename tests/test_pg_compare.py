"""`bellman compare` on the policy-gradient results (benchmarks/pg_scores.json, written by
benchmarks/pg_compare.py): its IQM, mean and their intervals equal rliable's on the same scores
(point estimates exactly, intervals within the bootstrap's Monte Carlo error, as in
test_stats.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rliable import library, metrics

from bellman.experiment import compare

ROOT = Path(__file__).resolve().parents[1]
RECORD = json.loads((ROOT / "benchmarks" / "pg_scores.json").read_text())
REPS = 10_000
TOLERANCE = 0.06
"""Of the interval's width: about six standard errors of two independent 10,000-resample
percentile estimates (see test_stats.py)."""


@pytest.fixture
def rliable_seed() -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(4321)
    yield
    np.random.set_state(state)


def run_dirs(tmp_path: Path) -> list[Path]:
    """A finished run directory per method holding its recorded final returns."""
    dirs = []
    for i, (method, scores) in enumerate(RECORD["scores"].items()):
        path = tmp_path / f"run{i}"
        path.mkdir()
        summary = {
            "algo": method.split(",")[0].lower(),
            "env": RECORD["env"],
            "final_return_per_seed": scores,
            "final_return_mean": float(np.mean(scores)),
        }
        (path / "summary.json").write_text(json.dumps(summary))
        (path / "config.json").write_text(
            json.dumps({"algo": summary["algo"], "env": RECORD["env"], "settings": {}})
        )
        dirs.append(path)
    return dirs


def test_pg_statistics_equal_rliables(tmp_path: Path, rliable_seed: None) -> None:
    methods = list(RECORD["scores"])
    assert len(methods) == 5 and all(len(s) == 8 for s in RECORD["scores"].values())
    ours = compare.compare(run_dirs(tmp_path), labels=methods, reps=REPS)
    matrices = {m: np.asarray(s, np.float64)[:, None] for m, s in RECORD["scores"].items()}
    spread = False
    for name, theirs in (("iqm", metrics.aggregate_iqm), ("mean", metrics.aggregate_mean)):
        points, intervals = library.get_interval_estimates(
            matrices, lambda x, f=theirs: np.array([f(x)]), reps=REPS
        )
        for method in methods:
            estimate = ours.estimates[method][name]
            (their_low,), (their_high,) = intervals[method]
            width = their_high - their_low
            spread |= width > 0
            assert estimate.value == pytest.approx(float(points[method][0]), rel=1e-12, abs=1e-9)
            assert estimate.low == pytest.approx(their_low, abs=TOLERANCE * width + 1e-9)
            assert estimate.high == pytest.approx(their_high, abs=TOLERANCE * width + 1e-9)
    assert spread, "some method's seeds differ, so some interval has a width"
