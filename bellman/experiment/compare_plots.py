"""The plots of `bellman compare`: performance profiles, and each statistic's interval per method
(the two figures of Agarwal et al., 2021, that carry a comparison)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bellman.stats import Profile

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    # matplotlib's object API with the Agg canvas: no pyplot, no GUI backend to load
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def performance_profile(
    path: Path, profiles: Mapping[str, Profile], score: str, title: str
) -> Figure:
    """Each method's fraction of runs scoring above tau, against tau, with its bootstrap band."""
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    for i, (label, p) in enumerate(profiles.items()):
        ax.step(p.taus, p.fraction, where="post", color=f"C{i}", label=label)
        ax.fill_between(p.taus, p.low, p.high, step="post", color=f"C{i}", alpha=0.2, linewidth=0)
    ax.set_xlabel(f"{score} tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"performance profile: {title}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return fig


def intervals(
    path: Path,
    estimates: Mapping[str, Mapping[str, tuple[float, float, float]]],
    names: Mapping[str, str],
    score: str,
    title: str,
) -> Figure:
    """One panel per statistic (`names`: key -> title), a bar from the interval's low to high
    end and a tick at the point estimate for each method (`estimates`: method -> key ->
    (value, low, high))."""
    methods = list(estimates)
    fig = _figure(2.6 * len(names) + 1.2, 0.45 * len(methods) + 1.6)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, (key, name) in zip(axes, names.items(), strict=True):
        for i, m in enumerate(methods):
            value, low, high = estimates[m][key]
            ax.barh(i, high - low, left=low, height=0.6, color=f"C{i}", alpha=0.5)
            ax.plot([value, value], [i - 0.3, i + 0.3], color="black", linewidth=1.5)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(methods)), methods, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"{score}: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return fig
