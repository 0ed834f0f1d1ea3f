"""The learning curve: mean and 95% confidence interval over seeds, against environment steps."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Student's t quantile t_{0.975} for 1..30 degrees of freedom (beyond, a series in 1/dof).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (two-sided 95%)."""
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


def mean_and_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 1) and its 95% Student-t interval; NaN values are left out."""
    n = np.sum(np.isfinite(values), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and single values
        mean = np.nanmean(values, axis=1)
        sem = np.nanstd(values, axis=1, ddof=1) / np.sqrt(np.maximum(n, 1))
    quantile = np.array([t975(int(k) - 1) if k > 1 else math.nan for k in n])
    half = np.where(n > 1, quantile * sem, 0.0)
    return mean, mean - half, mean + half


def band(
    values: np.ndarray, bounds: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 1) and its 95% interval, clipped to what the returns can be: never
    beyond the lowest and highest seed at that point (a mean of returns at most 500 has no
    interval above 500), nor beyond `bounds`, the env's (lowest, highest) return when known."""
    mean, low, high = mean_and_interval(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        low = np.fmax(low, np.nanmin(values, axis=1))
        high = np.fmin(high, np.nanmax(values, axis=1))
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    return mean, low, high


def _series(records: list[dict[str, Any]], name: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r["step"], r[name]) for r in records if r.get(name) is not None]
    if not rows:
        return np.zeros(0), np.zeros((0, 1))
    steps = np.asarray([s for s, _ in rows], np.float64)
    as_floats = lambda x: [np.nan if v is None else v for v in np.atleast_1d(np.asarray(x, object))]
    values = np.asarray([as_floats(x) for _, x in rows], np.float64)
    return steps, values


def learning_curve(
    records: list[dict[str, Any]],
    path: Path,
    title: str,
    bounds: tuple[float, float] | None = None,
) -> Figure:
    """Plot training and greedy-evaluation returns from metrics records to `path`; the shaded
    interval stays within the seeds' returns and `bounds` (see `band`). Returns the figure."""
    # matplotlib's object API with the Agg canvas: no pyplot, no GUI backend to load
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, label, color in (
        ("episode_return", "training episodes (exploring policy)", "tab:blue"),
        ("eval_return", "evaluation (greedy policy)", "tab:orange"),
    ):
        steps, values = _series(records, name)
        if steps.size == 0:
            continue
        mean, low, high = band(values, bounds)
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
    return fig
