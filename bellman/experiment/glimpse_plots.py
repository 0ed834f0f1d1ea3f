"""Where an attention model looks: its glimpses drawn on the images it classified.

Each panel is one image with the glimpses in order: the finest patch of each as a numbered square,
the coarsest as a dashed one, a line from each glimpse to the next; the title gives the model's
answer and the true label (red when wrong).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman.contracts import GlimpsePaths
from bellman.experiment.value_plots import _figure

GLIMPSE_PLOT = "glimpses.png"


def test_images(env: Any, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """`count` first observations of the env's episodes `[count, H, W]`, and their labels where
    the env's state has one."""
    keys = jax.random.split(jax.random.PRNGKey(seed), count)
    state, ts = jax.vmap(env.reset)(keys)
    label = getattr(state, "label", None)
    return np.asarray(ts.obs), None if label is None else np.asarray(label)


def draw_glimpses(
    path: Path,
    images: np.ndarray,
    locations: np.ndarray,
    answers: np.ndarray,
    labels: np.ndarray | None,
    glimpse_size: int,
    scales: int,
    title: str,
) -> None:
    """Panels of `images` `[N, H, W]` with the glimpses at `locations` `[N, T, 2]` (row, column
    in [-1, 1]), written to `path`."""
    n = len(images)
    columns = min(n, 4)
    rows = (n + columns - 1) // columns
    fig = _figure((2.6 * columns, 2.8 * rows + 0.4))
    height, width = images.shape[1:3]
    for i in range(n):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(images[i].reshape(height, width), cmap="gray_r", interpolation="nearest")
        row = (locations[i, :, 0] + 1.0) * 0.5 * height - 0.5
        col = (locations[i, :, 1] + 1.0) * 0.5 * width - 0.5
        ax.plot(col, row, "-", color="tab:blue", lw=1.0, alpha=0.8)
        for t in range(len(row)):
            for s, style in ((glimpse_size, "-"), (glimpse_size * 2 ** (scales - 1), "--")):
                if style == "--" and scales == 1:
                    continue
                ax.add_patch(
                    _square(col[t] - s / 2, row[t] - s / 2, s, style, 0.35 + 0.65 * t / len(row))
                )
            ax.text(col[t], row[t], str(t + 1), color="tab:red", ha="center", va="center")
        wrong = labels is not None and answers[i] != labels[i]
        truth = "" if labels is None else f" (label {labels[i]})"
        ax.set_title(f"answer {answers[i]}{truth}", fontsize=9, color="red" if wrong else "black")
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def _square(x: float, y: float, side: float, style: str, alpha: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), side, side, fill=False, ls=style, ec="tab:orange", alpha=alpha)


def plot_glimpses(
    path: Path,
    glimpse_paths: GlimpsePaths,
    config: Any,
    env: Any,
    state: Any,
    title: str,
    count: int = 8,
) -> None:
    """Seed 0's glimpses (`state` of one seed) on `count` of the env's images."""
    images, labels = test_images(env, count)
    locations, answers = glimpse_paths(
        config, env.spec, state, jnp.asarray(images), jax.random.PRNGKey(1)
    )
    draw_glimpses(
        path,
        images,
        np.asarray(locations),
        np.asarray(answers),
        labels,
        config.glimpse_size,
        config.scales,
        title,
    )
