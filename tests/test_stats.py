"""bellman.stats against rliable (Agarwal et al., 2021) itself: point estimates to 1e-12, and
bootstrap intervals to within their Monte Carlo error (the resamples themselves differ).

How close two percentile-bootstrap intervals from independent resamples should be: the q-quantile
of B resamples has a standard error of about sqrt(q (1 - q) / B) / f(x_q); for a bootstrap
distribution near normal, at q = 0.025, that is 0.019 sigma at B = 20,000, 0.5% of the 95%
interval's width (3.92 sigma), and 0.7% for the difference of two such estimates. The tolerances
below are about six of those standard errors; the resamples are seeded, so the tests are
deterministic.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from rliable import library, metrics

from bellman import stats

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(1, 1), (3, 1), (10, 1), (4, 3), (7, 5), (10, 5), (25, 2)]


def scores(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Scores on tasks of different scales and spreads, as normalised returns often are."""
    rng = np.random.default_rng(seed)
    runs, tasks = shape
    return rng.normal(rng.uniform(0.3, 1.5, tasks), rng.uniform(0.1, 1, tasks), size=(runs, tasks))


@pytest.fixture
def rliable_seed() -> Iterator[None]:
    """rliable's bootstraps draw from numpy's global generator: seed it, then put it back."""
    state = np.random.get_state()
    np.random.seed(1234)
    yield
    np.random.set_state(state)


# ----- point estimates -----


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (stats.mean, metrics.aggregate_mean),
        (stats.median, metrics.aggregate_median),
        (stats.iqm, metrics.aggregate_iqm),
        (stats.optimality_gap, metrics.aggregate_optimality_gap),
    ],
    ids=["mean", "median", "iqm", "optimality_gap"],
)
def test_point_estimates_match_rliable(ours, theirs, shape: tuple[int, int]) -> None:
    for seed in range(3):
        s = scores(shape, seed)
        assert ours(s) == pytest.approx(float(theirs(s)), rel=1e-12, abs=1e-12)


def test_iqm_drops_a_quarter_at_each_end() -> None:
    # 8 scores: the lowest 2 and the highest 2 go, whatever their size
    s = np.array([[-100.0, 1.0], [2.0, 3.0], [4.0, 1e6], [0.0, 5.0]])
    assert stats.iqm(s) == pytest.approx((1 + 2 + 3 + 4) / 4)


def test_optimality_gap_clips_at_gamma() -> None:
    assert stats.optimality_gap(np.array([[0.5], [2.0]])) == pytest.approx(0.25)
    assert stats.optimality_gap(np.array([[0.5], [2.0]]), gamma=3.0) == pytest.approx(1.75)


@pytest.mark.parametrize("runs_x, runs_y, tasks", [(5, 5, 1), (8, 6, 3), (3, 10, 2)])
@pytest.mark.parametrize("ties", [False, True])
def test_probability_of_improvement_matches_rliable(
    runs_x: int, runs_y: int, tasks: int, ties: bool
) -> None:
    rng = np.random.default_rng(runs_x * runs_y * tasks)
    if ties:  # few distinct values: many ties, each counting 1/2
        x, y = rng.integers(0, 4, (runs_x, tasks)), rng.integers(0, 4, (runs_y, tasks))
    else:
        x, y = rng.normal(0.3, 1, (runs_x, tasks)), rng.normal(0, 1, (runs_y, tasks))
    expected = metrics.probability_of_improvement(x.astype(float), y.astype(float))
    assert stats.probability_of_improvement(x, y) == pytest.approx(expected, abs=1e-12)
    assert stats.probability_of_improvement(y, x) == pytest.approx(1 - expected, abs=1e-12)


def test_probability_of_improvement_of_equal_runs_is_one_half() -> None:
    x = scores((6, 2))
    assert stats.probability_of_improvement(x, x) == 0.5
    assert stats.probability_of_improvement(x + 1, x) > stats.probability_of_improvement(x, x)


@pytest.mark.parametrize("shape", [(10, 1), (7, 5)])
def test_run_score_distribution_matches_rliable(shape: tuple[int, int]) -> None:
    s = scores(shape)
    taus = np.linspace(-1, 3, 41)
    np.testing.assert_allclose(
        stats.run_score_distribution(s, taus), library.score_distributions(s, taus), atol=1e-12
    )


# ----- intervals -----

REPS = 20_000


@pytest.mark.parametrize("shape", [(10, 1), (10, 5)])
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (stats.iqm, metrics.aggregate_iqm),
        (stats.mean, metrics.aggregate_mean),
        (stats.median, metrics.aggregate_median),
        (stats.optimality_gap, metrics.aggregate_optimality_gap),
    ],
    ids=["iqm", "mean", "median", "optimality_gap"],
)
def test_bootstrap_interval_matches_rliable(
    ours, theirs, shape: tuple[int, int], rliable_seed: None
) -> None:
    s = scores(shape)
    point, interval = library.get_interval_estimates(
        {"m": s}, lambda x: np.array([theirs(x)]), reps=REPS
    )
    low, high = stats.bootstrap_interval({"m": s}, ours, reps=REPS)["m"]
    (their_low,), (their_high,) = interval["m"]
    width = their_high - their_low
    assert width > 0
    assert ours(s) == pytest.approx(float(point["m"][0]), rel=1e-12, abs=1e-12)
    assert low == pytest.approx(their_low, abs=0.04 * width)
    assert high == pytest.approx(their_high, abs=0.04 * width)


def test_improvement_interval_matches_rliable(rliable_seed: None) -> None:
    # rliable computes each resample with scipy's Mann-Whitney test, which is slow: 4,000 of its
    # resamples (endpoint error about 1.1% of the width), 20,000 of ours
    rng = np.random.default_rng(7)
    x, y = rng.normal(0.4, 1, (6, 2)), rng.normal(0, 1, (5, 2))
    point, interval = library.get_interval_estimates(
        {"xy": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=4000
    )
    low, high = stats.improvement_interval(x, y, reps=REPS)
    (their_low,), (their_high,) = interval["xy"]
    step = 1 / (2 * 6 * 5 * 2)  # P(X > Y) moves in steps of half a pair over the tasks
    tolerance = 0.06 * (their_high - their_low) + step
    assert stats.probability_of_improvement(x, y) == pytest.approx(point["xy"][0], abs=1e-12)
    assert low == pytest.approx(their_low, abs=tolerance)
    assert high == pytest.approx(their_high, abs=tolerance)


def test_performance_profile_matches_rliable(rliable_seed: None) -> None:
    s = scores((10, 3))
    taus = np.linspace(-0.5, 3, 36)
    profiles, bands = library.create_performance_profile({"m": s}, taus, reps=REPS)
    profile = stats.performance_profile(s, taus, reps=REPS)
    np.testing.assert_allclose(profile.fraction, profiles["m"], atol=1e-12)
    # the fraction moves in steps of 1 / (runs x tasks): where a quantile falls at a step, two
    # independent bootstraps may land on either side of it
    step = 1 / s.size
    np.testing.assert_allclose(profile.low, bands["m"][0], atol=step + 1e-9)
    np.testing.assert_allclose(profile.high, bands["m"][1], atol=step + 1e-9)
    assert np.all(profile.low <= profile.fraction + 1e-12)
    assert np.all(profile.fraction <= profile.high + 1e-12)


def test_bootstrap_is_stratified_by_task() -> None:
    # every resample keeps each task's column: the mean over tasks of constant columns is fixed
    s = np.array([[0.0, 1.0]] * 5)
    assert stats.bootstrap_interval({"m": s}, stats.mean)["m"] == (0.5, 0.5)
    # and draws runs with replacement within a task
    low, high = stats.bootstrap_interval({"m": scores((8, 1))}, stats.mean)["m"]
    assert low < high


def test_intervals_are_seeded_and_per_method() -> None:
    a, b = scores((8, 2), 1), scores((6, 2), 2)
    both = stats.bootstrap_interval({"a": a, "b": b}, stats.iqm, reps=500, seed=3)
    assert both == stats.bootstrap_interval({"a": a, "b": b}, stats.iqm, reps=500, seed=3)
    assert both["b"] == stats.bootstrap_interval({"b": b}, stats.iqm, reps=500, seed=3)["b"]
    assert both["a"] != stats.bootstrap_interval({"a": a}, stats.iqm, reps=500, seed=4)["a"]


def test_wider_confidence_gives_a_wider_interval() -> None:
    s = scores((10, 2))
    low90, high90 = stats.bootstrap_interval({"m": s}, stats.iqm, confidence=0.9)["m"]
    low99, high99 = stats.bootstrap_interval({"m": s}, stats.iqm, confidence=0.99)["m"]
    assert low99 <= low90 <= stats.iqm(s) <= high90 <= high99


@pytest.mark.parametrize(
    "bad",
    [np.zeros(3), np.zeros((0, 2)), np.array([[1.0, np.nan]]), np.array([[np.inf]])],
    ids=["1-d", "empty", "nan", "inf"],
)
def test_bad_scores_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="scores"):
        stats.iqm(bad)
    with pytest.raises(ValueError, match="scores"):
        stats.bootstrap_interval({"m": bad}, stats.iqm, reps=10)


def test_bad_bootstrap_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="reps"):
        stats.bootstrap_interval({"m": scores((3, 1))}, stats.iqm, reps=0)
    with pytest.raises(ValueError, match="confidence"):
        stats.performance_profile(scores((3, 1)), [0.0], confidence=1.0)
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(scores((3, 2)), scores((3, 1)))


# ----- normalisation, curves, score ranges -----


def test_normalize() -> None:
    np.testing.assert_allclose(stats.normalize([22.2, 475.0, 248.6], 22.2, 475.0), [0, 1, 0.5])
    with pytest.raises(ValueError, match="high != low"):
        stats.normalize([1.0], 2.0, 2.0)


def test_curve_area_is_the_mean_return_over_the_run() -> None:
    steps = np.array([0.0, 100.0, 300.0])
    returns = np.array([0.0, 100.0, 100.0])
    # trapezoids: 100 * 50 + 200 * 100 = 25,000 over 300 steps
    assert stats.curve_area(steps, returns) == pytest.approx(25_000 / 300)
    per_seed = stats.curve_area(steps, np.stack([returns, 2 * returns], axis=1))
    np.testing.assert_allclose(per_seed, [25_000 / 300, 50_000 / 300])
    assert stats.curve_area([5.0], [7.0]) == 7.0
    assert stats.curve_area([0.0, 1.0], [3.0, 3.0]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="increase"):
        stats.curve_area([0.0, 0.0], [1.0, 2.0])


@pytest.mark.parametrize("env_id", sorted(stats.SCORE_RANGES))
def test_score_ranges_follow_their_sources(env_id: str) -> None:
    random, reference = stats.SCORE_RANGES[env_id]
    assert reference == gym.spec(env_id).reward_threshold
    assert random < reference
    if env_id in stats.RETURN_BOUNDS:
        low, high = stats.RETURN_BOUNDS[env_id]
        assert low <= random <= high and low <= reference <= high


def test_cartpole_random_return_is_measured() -> None:
    spec = importlib.util.spec_from_file_location(
        "random_returns", ROOT / "scripts/random_returns.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    returns = script.random_returns("CartPole-v1", episodes=300, seed=0)
    standard_error = returns.std(ddof=1) / np.sqrt(len(returns))
    assert returns.mean() == pytest.approx(
        stats.SCORE_RANGES["CartPole-v1"][0], abs=4 * standard_error
    )
