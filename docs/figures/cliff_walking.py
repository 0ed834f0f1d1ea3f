"""Sutton & Barto's Figure 6.4 with bellman: Q-learning, SARSA and Expected SARSA on the cliff.

    python docs/figures/cliff_walking.py [--seeds 50] [--steps 25000]

Trains each method with 50 vmapped seeds (epsilon 0.1, alpha 0.5, gamma 1), then writes
docs/figures/cliff_walking.png (online return per logged chunk, mean and 95% interval over seeds)
and prints the numbers quoted in docs/algorithms/tabular.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import bellman

HERE = Path(__file__).resolve().parent
METHODS = ("q-learning", "sarsa", "expected-sarsa")


def online_returns(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "episode_return" in r]
    steps = np.array([r["step"] for r in records])
    return steps, np.array([r["episode_return"] for r in records], np.float64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--steps", type=int, default=25_000)
    args = parser.parse_args()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    out = Path(tempfile.mkdtemp())
    for method in METHODS:
        run = bellman.train(
            method,
            env="CliffWalking-v0",
            steps=args.steps,
            seeds=args.seeds,
            out=out / method,
            progress=False,
            evals=0,
            gamma=1.0,
            alpha=0.5,
            epsilon=0.1,
        )
        steps, returns = online_returns(run.run_dir)
        mean = np.nanmean(returns, axis=1)
        half = 1.96 * np.nanstd(returns, axis=1) / np.sqrt(returns.shape[1])
        ax.plot(steps, mean, label=method)
        ax.fill_between(steps, mean - half, mean + half, alpha=0.25)
        late = np.nanmean(returns[len(returns) // 2 :], axis=0)
        greedy = np.asarray(run.summary["final_return_per_seed"])
        print(
            f"{method}: online return over the second half {late.mean():.1f} "
            f"(seeds {late.min():.1f} .. {late.max():.1f}); greedy return {greedy.mean():.2f}, "
            f"{(greedy == -13).mean():.0%} of seeds on the optimal path (-13); "
            f"wall {run.summary['wall_s']:.1f} s for {args.seeds} seeds"
        )
    ax.set_ylim(-120, 0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return of training episodes (epsilon-greedy)")
    ax.set_title(f"CliffWalking-v0, {args.seeds} seeds, epsilon 0.1, alpha 0.5")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(HERE / "cliff_walking.png")


if __name__ == "__main__":
    main()
