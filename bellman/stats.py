"""Aggregate scores with honest uncertainty (Agarwal et al., 2021, "Deep Reinforcement Learning
at the Edge of the Statistical Precipice"), computed as their rliable library computes them.

Scores are a matrix `scores[runs, tasks]`: a row per run (a seed), a column per task (an env); a
single env is one column. Every run counts: no statistic here looks only at the best seed.

- `mean`: mean over tasks of the mean over runs (rliable `metrics.aggregate_mean`).
- `median`: median over tasks of the mean over runs (`aggregate_median`).
- `iqm`: interquartile mean, the mean of the middle 50% of all runs x tasks scores once the
  lowest and highest floor(n / 4) of the n scores are dropped, as scipy.stats.trim_mean(scores,
  0.25, axis=None) (`aggregate_iqm`). Robust to outlying runs, yet uses half the data, not one
  value as the median does.
- `optimality_gap`: gamma - mean(min(score, gamma)), how far the runs fall short of gamma
  (normalised score 1: the reference) when scores above it count as gamma
  (`aggregate_optimality_gap`). Lower is better.
- `probability_of_improvement`: P(X > Y), the chance that a run of X scores more than a run of Y
  on the same task, ties counting 1/2 (the Mann-Whitney U statistic over nx * ny), averaged
  over tasks (`metrics.probability_of_improvement`).
- `performance_profile`: the run-score distribution, the fraction of runs x tasks scoring above
  each threshold tau (`library.create_performance_profile`, score distributions).

Intervals come from the stratified percentile bootstrap (`bootstrap_interval`): each of `reps`
resamples draws, independently for every task, as many runs as the task has, with replacement,
from that task's runs (the tasks stay fixed: the interval is over the seeds one could have
drawn); the statistic is computed on every resample, and the interval runs from its (1 - c) / 2
to its (1 + c) / 2 quantile over the resamples (numpy's linear interpolation), c the confidence.
This is rliable's `get_interval_estimates(..., method="percentile", task_bootstrap=False)`. For
P(X > Y), X's and Y's runs are resampled independently of each other (rliable's
`StratifiedIndependentBootstrap`). Each call draws from `numpy.random.default_rng(seed)` afresh,
so a method's interval depends only on its own scores and the seed.

`normalize` maps returns to (return - random) / (reference - random) with `SCORE_RANGES`, so that
scores of different envs can be aggregated; `RETURN_BOUNDS` are the returns an episode can have.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

REPS = 2000
"""Bootstrap resamples by default: rliable's default for performance profiles."""
CONFIDENCE = 0.95

# env id -> (mean return of the uniformly random policy, reference return). Random: measured with
# `python scripts/random_returns.py` (gymnasium 1.3, 1,000 episodes each, seed 0; its standard
# errors: CartPole 0.36, Acrobot 0.31, MountainCar 0, MountainCarContinuous 0.03, LunarLander
# 3.5). Reference: the return at which gymnasium calls the task solved, its registered
# `reward_threshold` (gymnasium.spec(env_id).reward_threshold). Pendulum-v1 has no
# reward_threshold and so no row here. For the envs with their default parameters only.
SCORE_RANGES: dict[str, tuple[float, float]] = {
    "CartPole-v1": (22.20, 475.0),
    "Acrobot-v1": (-499.09, -100.0),
    "MountainCar-v0": (-200.0, -110.0),
    "MountainCarContinuous-v0": (-33.33, 90.0),
    "LunarLander-v3": (-181.71, 200.0),
}

# env id -> (lowest, highest) return an episode can have, from the env's definition, with its
# default parameters (a longer time limit allows more).
RETURN_BOUNDS: dict[str, tuple[float, float]] = {
    # +1 a step, at most 500 steps
    "CartPole-v1": (0.0, 500.0),
    # -1 a step until the goal (0 there), at most 500 steps
    "Acrobot-v1": (-500.0, 0.0),
    # -1 a step, at most 200 steps
    "MountainCar-v0": (-200.0, 0.0),
    # -0.1 a^2 a step with |a| <= 1, at most 999 steps, +100 at the goal
    "MountainCarContinuous-v0": (-99.9, 100.0),
    # -(theta^2 + 0.1 thetadot^2 + 0.001 u^2) a step with |theta| <= pi, |thetadot| <= 8,
    # |u| <= 2, for 200 steps
    "Pendulum-v1": (-200 * (math.pi**2 + 0.1 * 8**2 + 0.001 * 2**2), 0.0),
    # minus the distance to the goal, at most sqrt(4^2 + 4^2 + 1 + 1), for at most 200 steps
    # (bellman.envs.roboparking)
    "RoboParking-v0": (-200 * math.sqrt(34.0), 0.0),
}

Metric = Callable[[np.ndarray], float]
"""A statistic of a score matrix `[runs, tasks]`."""


class Interval(NamedTuple):
    """A confidence interval: `low, high = interval`."""

    low: float
    high: float


@dataclass(frozen=True)
class Profile:
    """A performance profile: at each threshold, the fraction of runs x tasks scoring above it,
    with its bootstrap band; all `[len(taus)]`."""

    taus: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _matrix(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    m = np.asarray(scores, np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"{name} must be a non-empty [runs, tasks] matrix, not shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} must be finite numbers (no NaN or infinity)")
    return m


# ----- point estimates -----


def mean(scores: np.ndarray) -> float:
    """Mean over tasks of the mean over runs of `scores` `[runs, tasks]`."""
    return float(np.mean(np.mean(_matrix(scores), axis=0)))


def median(scores: np.ndarray) -> float:
    """Median over tasks of the mean over runs of `scores` `[runs, tasks]`."""
    return float(np.median(np.mean(_matrix(scores), axis=0)))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all of `scores` `[runs, tasks]`: the mean of what is left when the
    lowest and highest floor(n / 4) of the n scores are dropped."""
    flat = np.sort(_matrix(scores), axis=None)
    cut = int(0.25 * flat.size)
    return float(np.mean(flat[cut : flat.size - cut]))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """gamma - mean(min(scores, gamma)) over all runs and tasks (normalised scores, so gamma = 1
    is the reference); 0 when every run reaches gamma."""
    return float(gamma - np.mean(np.minimum(_matrix(scores), gamma)))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y): for each task, the fraction of pairs (a run of X, a run of Y) in which X's run
    scores more, ties counting 1/2 (U / (nx ny), U the Mann-Whitney statistic); averaged over
    tasks. `x` `[nx, tasks]` and `y` `[ny, tasks]` may have different numbers of runs."""
    x, y = _pair(x, y)
    return float(np.mean(_improvement_per_task(x, y)))


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _matrix(x, "x"), _matrix(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same tasks, not {x.shape[1]} and {y.shape[1]}")
    return x, y


def _improvement_per_task(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`[tasks]`: the fraction of run pairs in which x beats y, ties counting 1/2."""
    diff = x[:, None, :] - y[None, :, :]  # [nx, ny, tasks]
    return np.mean((diff > 0) + 0.5 * (diff == 0), axis=(0, 1))


def run_score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """`[len(taus)]`: the fraction of all runs x tasks of `scores` scoring above each tau."""
    m = _matrix(scores)
    return np.mean(m[..., None] > np.asarray(taus, np.float64), axis=(0, 1))


def normalize(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """(scores - low) / (high - low): `low` maps to 0 and `high` to 1."""
    if not high != low:
        raise ValueError(f"normalize needs high != low, not {low} and {high}")
    return (np.asarray(scores, np.float64) - low) / (high - low)


def curve_area(steps: np.ndarray, returns: np.ndarray) -> np.ndarray | float:
    """The area under a learning curve divided by its span of steps: the mean return over the
    run by the trapezoid rule, in return units (a curve that learns sooner scores more).

    Args:
        steps: `[T]`, increasing.
        returns: `[T]` or `[T, seeds]`.

    Returns:
        A float, or `[seeds]`; with one point, that point's return.
    """
    t = np.asarray(steps, np.float64)
    r = np.asarray(returns, np.float64)
    if t.ndim != 1 or t.size == 0 or r.shape[:1] != t.shape:
        raise ValueError(f"steps [T] and returns [T, ...] do not match: {t.shape}, {r.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("steps must increase")
    if t.size == 1:
        area = r[0]
    else:
        dt = np.diff(t).reshape(-1, *[1] * (r.ndim - 1))
        area = np.sum(0.5 * (r[1:] + r[:-1]) * dt, axis=0) / (t[-1] - t[0])
    return float(area) if np.ndim(area) == 0 else area


# ----- the stratified bootstrap -----


def _check(reps: int, confidence: float) -> None:
    if reps < 1:
        raise ValueError(f"reps must be at least 1, not {reps}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence}")


def _resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`scores` `[runs, tasks]` with each task's runs drawn anew, with replacement."""
    runs, tasks = scores.shape
    return scores[rng.integers(0, runs, size=(runs, tasks)), np.arange(tasks)]


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The (1 - c) / 2 and (1 + c) / 2 quantiles over the resamples (axis 0)."""
    alpha = (1.0 - confidence) / 2
    low, high = np.percentile(samples, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return low, high


def bootstrap_interval(
    scores_by_method: Mapping[str, np.ndarray],
    metric: Metric,
    reps: int = REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, Interval]:
    """The stratified percentile bootstrap interval of `metric` for each method's scores.

    Args:
        scores_by_method: label -> scores `[runs, tasks]`.
        metric: a statistic of a score matrix (`iqm`, `mean`, ...).
        reps: resamples; the interval's ends move by a few percent of its width from one seed to
            another at 2,000, by about 1% at 20,000.
        confidence: the interval's coverage.
        seed: seed of each method's resampling.

    Returns:
        label -> (low, high).
    """
    _check(reps, confidence)
    out = {}
    for label, scores in scores_by_method.items():
        m = _matrix(scores, f"the scores of {label}")
        rng = np.random.default_rng(seed)
        samples = np.array([metric(_resample(m, rng)) for _ in range(reps)])
        low, high = _percentiles(samples, confidence)
        out[label] = Interval(float(low), float(high))
    return out


def improvement_interval(
    x: np.ndarray,
    y: np.ndarray,
    reps: int = REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The stratified percentile bootstrap interval of P(X > Y), X's and Y's runs resampled
    independently within each task (`probability_of_improvement`)."""
    _check(reps, confidence)
    x, y = _pair(x, y)
    rng = np.random.default_rng(seed)
    samples = np.array(
        [np.mean(_improvement_per_task(_resample(x, rng), _resample(y, rng))) for _ in range(reps)]
    )
    low, high = _percentiles(samples, confidence)
    return Interval(float(low), float(high))


def performance_profile(
    scores: np.ndarray,
    taus: np.ndarray,
    reps: int = REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Profile:
    """The run-score distribution of `scores` `[runs, tasks]` at each of `taus`, with its
    stratified percentile bootstrap band (pointwise, at each tau)."""
    _check(reps, confidence)
    m = _matrix(scores)
    t = np.asarray(taus, np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    samples = np.array([run_score_distribution(_resample(m, rng), t) for _ in range(reps)])
    low, high = _percentiles(samples, confidence)
    return Profile(taus=t, fraction=run_score_distribution(m, t), low=low, high=high)
