"""MuZero's learning results; writes RESULTS.md's section muzero-results.

    python benchmarks/muzero_results.py [--only cartpole,tictactoe,minatar] [--minatar-steps N]

- cartpole: `bellman train muzero --env CartPole-v1 --seeds 4` (the defaults), 100,000 env steps
  per seed. Target (issue 18): mean final return >= 475 over the 4 seeds.
- tictactoe: `bellman train muzero --env tic_tac_toe --seeds 2` (the tic_tac_toe preset), timed
  from process start to exit, then `bellman arena RUN minimax --games 200 --seed-index i` for
  each seed. Target: a run of at most 30 minutes after which no game of 200 (100 as first
  player, 100 as second) is lost against exact minimax.
- minatar: Breakout-MinAtar, MuZero (the minatar preset) and DQN (its minatar preset) for the
  same env steps, 2 seeds each, their evaluation curves in one plot
  (benchmarks/muzero_minatar_breakout.png).

Every run is one `bellman train` command; the JSON of each group is kept in
benchmarks/out/muzero-results.json (the groups run separately with `--only`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from run import HERE, OUT, ROOT, machine, write_section

DATA = OUT / "muzero-results.json"
PLOT = HERE / "muzero_minatar_breakout.png"


def train(name: str, args: list[str]) -> dict:
    out = OUT / f"muzero-{name}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "bellman", "train", *args, "--out", str(out), "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval_return"]) for r in records if "eval_return" in r]
    return {
        "command": " ".join(["bellman", "train", *args]),
        "wall_s": wall,
        "summary": summary,
        "curve": curve,
        "run_dir": str(out),
    }


def arena(run_dir: str, opponent: str, seed_index: int, games: int) -> dict:
    cmd = [sys.executable, "-m", "bellman", "arena", run_dir, opponent, "--games", str(games)]
    cmd += ["--seed-index", str(seed_index), "--json"]
    done = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def cartpole() -> dict:
    args = ["muzero", "--env", "CartPole-v1", "--seeds", "4", "--steps", "100000"]
    return train("cartpole", [*args, "--evals", "10", "--eval-episodes", "20"])


def tictactoe(steps: int) -> dict:
    args = ["muzero", "--env", "tic_tac_toe", "--seeds", "2", "--steps", str(steps)]
    result = train("tictactoe", [*args, "--evals", "8", "--eval-episodes", "100"])
    result["arena"] = [
        {name: arena(result["run_dir"], name, i, 200) for name in ("minimax", "random")}
        for i in range(2)
    ]
    return result


def minatar(steps: int) -> dict:
    common = ["--env", "Breakout-MinAtar", "--seeds", "2", "--steps", str(steps)]
    common += ["--evals", "10", "--eval-episodes", "10"]
    return {
        "muzero": train("minatar", ["muzero", *common]),
        "dqn": train("minatar-dqn", ["dqn", *common, "--preset", "minatar"]),
    }


def plot(data: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name in ("muzero", "dqn"):
        curve = data[name]["curve"]
        steps = np.array([s for s, _ in curve])
        values = np.array([v for _, v in curve], np.float64)
        ax.plot(steps, values.mean(axis=1), label=f"{name} (mean of {values.shape[1]} seeds)")
        ax.fill_between(steps, values.min(axis=1), values.max(axis=1), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title("Breakout-MinAtar: MuZero and DQN (shaded: min to max over seeds)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def row(title: str, r: dict) -> str:
    s = r["summary"]
    per_seed = ", ".join(f"{v:.1f}" for v in s["final_return_per_seed"])
    return (
        f"| {title} | {s['steps']:,} | {s['seeds']} | {s['final_return_mean']:.2f} ({per_seed}) "
        f"| {s['compile_s']:.1f} | {s['train_s']:.0f} | {r['wall_s']:.0f} | "
        f"{s['steps_per_s']:,.0f} |"
    )


def markdown(data: dict) -> str:
    lines = [
        "Each row is one `bellman train` command (in `benchmarks/muzero_results.py`); the return "
        "is the evaluation's mean per seed after training: the search with eval_simulations "
        "and no noise (20 episodes per seed on CartPole, 10 on MinAtar; on tic-tac-toe 100 games "
        "against minimax, +1 a win, 0 a draw, -1 a loss). Wall is the whole process.",
        "",
        "| run | env steps per seed | seeds | final return, mean (per seed) | compile s | "
        "train s | wall s | env steps/s (all seeds) |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    if "cartpole" in data:
        lines.append(row("CartPole-v1, muzero defaults", data["cartpole"]))
    if "tictactoe" in data:
        lines.append(row("tic_tac_toe, muzero preset", data["tictactoe"]))
    if "minatar" in data:
        lines.append(row("Breakout-MinAtar, muzero preset", data["minatar"]["muzero"]))
        lines.append(row("Breakout-MinAtar, dqn preset", data["minatar"]["dqn"]))
    if "cartpole" in data:
        s = data["cartpole"]["summary"]
        ok = s["final_return_mean"] >= 475
        lines += [
            "",
            f"- CartPole target, mean final return >= 475 over 4 seeds within 100,000 "
            f"env steps: **{'met' if ok else 'missed'}** ({s['final_return_mean']:.1f}).",
        ]
    if "tictactoe" in data:
        t = data["tictactoe"]
        arenas = t["arena"]
        lost = sum(a["minimax"]["losses"] for a in arenas)
        ok = lost == 0 and t["wall_s"] <= 1800
        lines += [
            f"- Tic-tac-toe target, a run of at most 30 minutes and no loss in 200 games per seed "
            f"against minimax: **{'met' if ok else 'missed'}** (run {t['wall_s']:.0f} s, "
            f"{lost} losses).",
            "",
            "| seed | opponent | as first: W / D / L | as second: W / D / L | score [95%] |",
            "|---:|---|---:|---:|---:|",
        ]
        for i, per_seed in enumerate(arenas):
            for name, r in per_seed.items():
                first, second = r["as_first"], r["as_second"]
                lo, hi = r["score_interval"]
                lines.append(
                    f"| {i} | {name} | {first['wins']} / {first['draws']} / {first['losses']} | "
                    f"{second['wins']} / {second['draws']} / {second['losses']} | "
                    f"{r['score']:.3f} [{lo:.3f}, {hi:.3f}] |"
                )
    for key, title in (("cartpole", "CartPole-v1"), ("tictactoe", "tic-tac-toe, vs minimax")):
        if key in data:
            curve = data[key]["curve"]
            seeds = len(curve[0][1]) if curve else 0
            lines += [
                "",
                f"Evaluation curve, {title}:",
                "",
                "| env steps per seed | " + " | ".join(f"seed {i}" for i in range(seeds)) + " |",
                "|---:|" + "---:|" * seeds,
            ]
            lines += [f"| {s:,} | " + " | ".join(f"{x:.2f}" for x in v) + " |" for s, v in curve]
    if "minatar" in data:
        mz, dqn = data["minatar"]["muzero"]["curve"], data["minatar"]["dqn"]["curve"]
        lines += [
            "",
            "Breakout-MinAtar, the evaluation return at the same env steps (mean of 2 seeds):",
            "",
            "| env steps per seed | muzero | dqn |",
            "|---:|---:|---:|",
        ]
        for (s, a), (_, b) in zip(mz, dqn, strict=True):
            lines.append(f"| {s:,} | {np.mean(a):.2f} | {np.mean(b):.2f} |")
        lines += ["", "![MuZero and DQN on Breakout-MinAtar](muzero_minatar_breakout.png)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="cartpole,tictactoe,minatar")
    parser.add_argument("--tictactoe-steps", type=int, default=800_000)
    parser.add_argument("--minatar-steps", type=int, default=300_000)
    args = parser.parse_args()
    meta = machine()
    data = json.loads(DATA.read_text()) if DATA.exists() else {}
    for group in args.only.split(","):
        print(group, "...", flush=True)
        if group == "cartpole":
            data["cartpole"] = cartpole()
        elif group == "tictactoe":
            data["tictactoe"] = tictactoe(args.tictactoe_steps)
        elif group == "minatar":
            data["minatar"] = minatar(args.minatar_steps)
            plot(data["minatar"], PLOT)
        else:
            raise SystemExit(f"unknown group {group}")
        data.setdefault("meta", {})[group] = meta
        OUT.mkdir(exist_ok=True)
        DATA.write_text(json.dumps(data, indent=1))
    body = markdown(data)
    write_section("muzero-results", body, meta, "python benchmarks/muzero_results.py")
    print(body)


if __name__ == "__main__":
    main()
