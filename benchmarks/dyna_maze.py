"""Dyna-Q on the Dyna Maze, Sutton & Barto's Figure 8.2: steps per episode against episodes for
n = 0, 5 and 50 planning steps, averaged over 30 runs; writes RESULTS.md's section dyna-maze
and docs/algorithms/dyna_maze.png.

    python benchmarks/dyna_maze.py [--runs 30] [--episodes 50]

The book's settings: alpha = 0.1, epsilon = 0.1, gamma = 0.95, Q_0 = 0, ties broken at random,
one env. Each run is bellman's own `tabular.act` and `tabular.learn` (method dyna-q) stepping
`DynaMaze-v0` one step at a time, the 30 runs of each n vmapped in one compiled program; the
episodes' lengths are read from where they end; the env's 2,000-step time limit is lifted (the
book has none). The figure's shape to reproduce: episode 1 is the same for every n (the book:
"about 1,700 steps" for its seeds; with Q_0 = 0 and random tie-breaks it is a uniform random
walk, whose expected length in this maze is 869 steps, solved exactly in the tests); from
episode 2 on, n = 50 walks near the 14-step shortest path within about 3 episodes, n = 5 within
about 5, and n = 0 (Q-learning) needs about 25.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import numpy as np
from run import OUT, ROOT, machine, write_section

from bellman.algos import tabular
from bellman.envs import finite, grids
from bellman.rollout import Rollout

PLANNING = (0, 5, 50)
BOOK = tabular.TabularConfig(method="dyna-q", alpha=0.1, epsilon=0.1, gamma=0.95)


def episode_lengths(n: int, runs: int, steps: int, seed: int = 0) -> np.ndarray:
    """`[runs, episodes]` lengths of the episodes each run finished in `steps` env steps."""
    env = finite.FiniteMDPEnv(grids.dyna_maze().replace(max_episode_steps=None))
    config = dataclasses.replace(BOOK, planning_steps=n)

    def one_run(key: jax.Array) -> jax.Array:
        init_key, reset_key, key = jax.random.split(key, 3)
        algo = tabular.init(init_key, config, env.spec, steps)
        env_state, ts = env.reset(reset_key)

        def step(carry: tuple, key: jax.Array) -> tuple[tuple, jax.Array]:
            algo, env_state, obs = carry
            act_key, env_key, learn_key = jax.random.split(key, 3)
            action, _ = tabular.act(config, env.spec, algo, obs[None], act_key)
            env_state, ts = env.step(env_key, env_state, action[0])
            rollout = Rollout(
                obs=obs[None, None],
                action=action[None],
                reward=ts.reward[None, None],
                terminated=ts.terminated[None, None],
                truncated=ts.truncated[None, None],
                next_obs=ts.final_obs[None, None],
                policy_info=None,
            )
            algo, _ = tabular.learn(config, env.spec, algo, rollout, learn_key)
            return (algo, env_state, ts.obs), ts.terminated | ts.truncated

        _, ended = jax.lax.scan(step, (algo, env_state, ts.obs), jax.random.split(key, steps))
        return ended

    ended = np.asarray(jax.jit(jax.vmap(one_run))(jax.random.split(jax.random.PRNGKey(seed), runs)))
    lengths = []
    for row in ended:
        ends = np.flatnonzero(row) + 1
        lengths.append(np.diff(np.concatenate([[0], ends])))
    shortest = min(len(x) for x in lengths)
    return np.stack([x[:shortest] for x in lengths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=40_000, help="env steps per run")
    args = parser.parse_args()
    meta = machine()
    curves, walls = {}, {}
    for n in PLANNING:
        start = time.perf_counter()
        lengths = episode_lengths(n, args.runs, args.steps)
        walls[n] = time.perf_counter() - start
        if lengths.shape[1] < args.episodes:
            raise SystemExit(
                f"n={n}: a run finished only {lengths.shape[1]} episodes in {args.steps} steps"
            )
        curves[n] = lengths[:, : args.episodes].mean(axis=0)
    (OUT / "dyna-maze.json").write_text(
        json.dumps({"meta": meta, "curves": {n: c.tolist() for n, c in curves.items()}})
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    episodes = np.arange(2, args.episodes + 1)
    for n, curve in curves.items():
        ax.plot(episodes, curve[1:], label=f"{n} planning steps" + (" (Q-learning)" * (n == 0)))
    ax.axhline(14, color="grey", linestyle=":", linewidth=1, label="shortest path (14)")
    ax.set_xlabel("episode")
    ax.set_ylabel(f"steps per episode (mean of {args.runs} runs)")
    ax.set_ylim(0, 800)
    ax.set_title("Dyna-Q on the Dyna Maze (Sutton & Barto, Figure 8.2)")
    ax.legend()
    fig.tight_layout()
    png = ROOT / "docs" / "algorithms" / "dyna_maze.png"
    fig.savefig(png, dpi=100)

    near = lambda curve: next(
        (i + 1 for i in range(1, len(curve)) if (curve[i:] <= 20.0).all()), None
    )
    lines = [
        f"`bellman.algos.tabular` with method dyna-q (alpha 0.1, epsilon 0.1, gamma 0.95, Q_0 = 0) "
        f"on DynaMaze-v0, {args.runs} runs for each n, each vmapped in one compiled program. "
        "Steps per episode, mean over the runs (the plot: docs/algorithms/dyna_maze.png):",
        "",
        "| episode | " + " | ".join(f"n = {n}" for n in PLANNING) + " |",
        "|---:|" + "---:|" * len(PLANNING),
    ]
    for e in (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 25, 30, 40, 50):
        if e <= args.episodes:
            cells = " | ".join(f"{curves[n][e - 1]:.1f}" for n in PLANNING)
            lines.append(f"| {e} | {cells} |")
    lines += [
        "",
        "First episode from which every later mean stays within 20 steps (the optimum is 14; "
        "the epsilon-greedy moves add about 2): "
        + ", ".join(f"n = {n}: {near(curves[n])}" for n in PLANNING)
        + ". Wall time per n, compiling included: "
        + ", ".join(f"{walls[n]:.1f} s" for n in PLANNING)
        + ".",
    ]
    body = "\n".join(lines)
    write_section("dyna-maze", body, meta, "python benchmarks/dyna_maze.py")
    print(body)


if __name__ == "__main__":
    main()
