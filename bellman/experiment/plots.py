"""The learning curve: mean and 95% confidence interval over seeds, against environment steps."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np


def mean_and_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 1) and its 95% Student-t interval; NaN values are left out."""
    from scipy import stats

    n = np.sum(np.isfinite(values), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and single values
        mean = np.nanmean(values, axis=1)
        sem = np.nanstd(values, axis=1, ddof=1) / np.sqrt(np.maximum(n, 1))
    half = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sem, 0.0)
    return mean, mean - half, mean + half


def _series(records: list[dict[str, Any]], name: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r["step"], r[name]) for r in records if r.get(name) is not None]
    if not rows:
        return np.zeros(0), np.zeros((0, 1))
    steps = np.asarray([s for s, _ in rows], np.float64)
    values = np.asarray(
        [
            [np.nan if v is None else v for v in np.atleast_1d(np.asarray(vals, object))]
            for _, vals in rows
        ],
        np.float64,
    )
    return steps, values


def learning_curve(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Plot training and greedy-evaluation returns from metrics records to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, label, color in (
        ("episode_return", "training episodes (exploring policy)", "tab:blue"),
        ("eval_return", "evaluation (greedy policy)", "tab:orange"),
    ):
        steps, values = _series(records, name)
        if steps.size == 0:
            continue
        mean, low, high = mean_and_interval(values)
        seeds = values.shape[1]
        ax.plot(steps, mean, color=color, label=f"{label}, mean of {seeds}")
        if seeds > 1:
            ax.fill_between(steps, low, high, color=color, alpha=0.25, linewidth=0)
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(title + "  (shaded: 95% interval over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
