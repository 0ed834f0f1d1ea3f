"""The learning curve's interval: Student's t quantiles against scipy, the band kept within the
returns the seeds reached, and the plot itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bellman.experiment.plots import band, learning_curve, mean_and_interval, t975


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


def test_band_stays_within_what_the_seeds_reached(tmp_path: Path) -> None:
    # three seeds at CartPole's 500 and one at 420: mean 480, and a t interval reaching 544
    records = [{"step": 1000 * i, "eval_return": [500.0, 500.0, 500.0, 420.0]} for i in (1, 2)]
    _, low, high = mean_and_interval(np.array([r["eval_return"] for r in records]))
    assert high.max() > 500 and low.min() < 420  # what the band was before it was clipped
    fig = learning_curve(records, tmp_path / "curve.png", "ppo on CartPole-v1")
    (band,) = fig.axes[0].collections
    drawn = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
    assert drawn.max() == pytest.approx(500.0) and drawn.min() == pytest.approx(420.0)


def test_band_is_clipped_to_the_envs_returns() -> None:
    values = np.array([[10.0, 30.0, 480.0, 500.0], [0.0, 0.0, 0.0, 50.0]])
    mean, low, high = band(values)
    np.testing.assert_allclose(mean, [255.0, 12.5])
    assert np.all(low >= values.min(axis=1)) and np.all(high <= values.max(axis=1))
    _, low_bounded, high_bounded = band(values, bounds=(5.0, 400.0))
    np.testing.assert_allclose(high_bounded, np.minimum(high, 400.0))
    np.testing.assert_allclose(low_bounded, np.maximum(low, 5.0))
