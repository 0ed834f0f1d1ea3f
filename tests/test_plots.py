"""The learning curve's interval: Student's t quantiles against scipy, and the plot itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bellman.experiment.plots import learning_curve, mean_and_interval, t975


@pytest.mark.parametrize("dof", [1, 2, 7, 15, 30, 31, 50, 100, 1000])
def test_t_quantile_matches_scipy(dof: int) -> None:
    assert t975(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=2e-3)


def test_interval_over_seeds() -> None:
    values = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, np.nan, 5.0, 5.0]])
    mean, low, high = mean_and_interval(values)
    np.testing.assert_allclose(mean, [2.5, 5.0])
    half = stats.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2
    np.testing.assert_allclose([low[0], high[0]], [2.5 - half, 2.5 + half], rtol=1e-3)
    np.testing.assert_allclose([low[1], high[1]], [5.0, 5.0])


def test_learning_curve_is_written(tmp_path: Path) -> None:
    records = [
        {"step": 1000 * i, "episode_return": [10.0 * i, 12.0 * i, None]} for i in range(1, 6)
    ] + [{"step": 5000, "eval_return": [50.0, 60.0, 55.0]}]
    learning_curve(records, tmp_path / "curve.png", "ppo on test")
    data = (tmp_path / "curve.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
