"""Pictures of a value function and its greedy policy, for planning results and tabular agents.

Grid worlds are drawn as a heat map of V with the policy's action in every cell (arrows for
moves, the action's name otherwise), walls dark and special cells lettered; an animation shows V_0,
V_1, ... over the iterations of a planning method. MDPs without a grid (the gambler's capital,
Taxi) get V(s) and the policy's action as curves over the states.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bellman.mdp import GridLayout


def _figure(size: tuple[float, float]) -> Any:
    # matplotlib's object API with the Agg canvas: no pyplot, no GUI backend to load
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _draw_grid(
    ax: Any,
    layout: GridLayout,
    values: np.ndarray,
    policy: np.ndarray | None,
    labels: Sequence[str],
    minimize: bool,
    limits: tuple[float, float],
    skip: np.ndarray,
) -> Any:
    """One heat map on `ax`; `skip[s]` hides the policy in state s (terminal, absorbing)."""
    grid = layout.to_grid(values)
    masked = np.ma.masked_invalid(grid)
    from matplotlib import colormaps

    cmap = colormaps["viridis_r" if minimize else "viridis"].with_extremes(bad=(0.15, 0.15, 0.15))
    image = ax.imshow(masked, cmap=cmap, vmin=limits[0], vmax=limits[1])
    rows, cols = layout.shape
    small = rows * cols <= 100
    font = max(4.0, min(10.0, 60.0 / max(rows, cols)))
    span = max(limits[1] - limits[0], 1e-12)
    for s, (r, c) in enumerate(layout.cells):
        dark = not np.isfinite(values[s]) or (values[s] - limits[0]) / span < 0.5
        if minimize:
            dark = not dark
        colour = "white" if dark else "black"
        text = []
        mark = layout.mark((r, c))
        if mark:
            text.append(mark)
        if policy is not None and not skip[s]:
            text.append(labels[int(policy[s])])
        if small and np.isfinite(values[s]):
            text.append(f"{values[s]:.2f}")
        ax.text(c, r, "\n".join(text), ha="center", va="center", color=colour, fontsize=font)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(labelsize=6)
    if layout.axes is not None:
        ax.set_ylabel(layout.axes[0])
        ax.set_xlabel(layout.axes[1])
    return image


def value_map(
    path: Path,
    layout: GridLayout,
    values: np.ndarray,
    policy: np.ndarray | None,
    labels: Sequence[str],
    title: str,
    minimize: bool = False,
    skip: np.ndarray | None = None,
) -> Path:
    """Write a heat map of V with the policy's actions on a grid to `path` (PNG)."""
    values = np.asarray(values, np.float64)
    skip = np.zeros(len(values), bool) if skip is None else np.asarray(skip, bool)
    rows, cols = layout.shape
    fig = _figure((min(2.0 + 0.75 * cols, 14.0), min(1.2 + 0.75 * rows, 12.0)))
    ax = fig.add_subplot()
    limits = (float(np.nanmin(values)), float(np.nanmax(values)))
    image = _draw_grid(ax, layout, values, policy, labels, minimize, limits, skip)
    fig.colorbar(image, ax=ax, label="cost V(s)" if minimize else "V(s)", shrink=0.8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def value_animation(
    path: Path,
    layout: GridLayout,
    history: np.ndarray,
    policies: np.ndarray | None,
    labels: Sequence[str],
    title: str,
    minimize: bool = False,
    skip: np.ndarray | None = None,
    max_frames: int = 60,
) -> Path:
    """Write an animated GIF of V_0, V_1, ... (`history` `[K, S]`) on the grid to `path`.

    `policies` `[K, S]` are the greedy policies of each V_k; long histories are thinned to
    `max_frames` frames (the first and last kept).
    """
    import imageio.v2 as imageio

    history = np.asarray(history, np.float64)
    skip = np.zeros(history.shape[1], bool) if skip is None else np.asarray(skip, bool)
    frames_at = np.unique(np.linspace(0, len(history) - 1, min(len(history), max_frames)).round())
    limits = (float(np.nanmin(history)), float(np.nanmax(history)))
    rows, cols = layout.shape
    frames: list[Any] = []
    for k in frames_at.astype(int):
        fig = _figure((min(2.0 + 0.75 * cols, 14.0), min(1.2 + 0.75 * rows, 12.0)))
        ax = fig.add_subplot()
        policy = None if policies is None else policies[k]
        image = _draw_grid(ax, layout, history[k], policy, labels, minimize, limits, skip)
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set_title(f"{title}: V_{k}", fontsize=9)
        fig.tight_layout()
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    imageio.mimsave(path, frames, duration=0.5, loop=0)
    return path


def value_curves(
    path: Path,
    values: np.ndarray,
    policy: np.ndarray | None,
    labels: Sequence[str],
    title: str,
    minimize: bool = False,
    skip: np.ndarray | None = None,
) -> Path:
    """V(s) and the policy's action against the state index (MDPs without a grid)."""
    values = np.asarray(values, np.float64)
    states = np.arange(len(values))
    fig = _figure((7.0, 5.0 if policy is not None else 3.0))
    ax = fig.add_subplot(2 if policy is not None else 1, 1, 1)
    ax.plot(states, values, color="tab:blue")
    ax.set_ylabel("cost V(s)" if minimize else "V(s)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if policy is not None:
        shown = np.ones(len(values), bool) if skip is None else ~np.asarray(skip, bool)
        try:
            numbers = np.array([float(labels[int(a)]) for a in policy])
            ylabel = "action"
        except (ValueError, IndexError):
            numbers, ylabel = np.asarray(policy, np.float64), "action index"
        low = fig.add_subplot(2, 1, 2, sharex=ax)
        low.bar(states[shown], numbers[shown], width=1.0, color="tab:orange")
        low.set_ylabel(ylabel)
        low.set_xlabel("state")
        low.grid(alpha=0.3)
    else:
        ax.set_xlabel("state")
    fig.tight_layout()
    fig.savefig(path)
    return path
