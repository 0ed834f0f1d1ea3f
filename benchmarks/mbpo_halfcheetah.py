"""MBPO against SAC on HalfCheetah-v5 (gymnasium backend) at the same env steps, with the wall
time of both; writes RESULTS.md's section mbpo-halfcheetah and benchmarks/mbpo_halfcheetah.png.

    python benchmarks/mbpo_halfcheetah.py [--steps 50000] [--evals 10] [--episodes 5]
        [--learning-starts 5000] [--note "..."]

Two commands, one after the other on the same machine, 1 seed each: `bellman train mbpo` (its
defaults) and `bellman train sac` (its MuJoCo preset), both on HalfCheetah-v5 with the host
backend, both with the same `--learning-starts` uniform-random steps first, and an evaluation of
`--episodes` fresh episodes every `--steps / --evals` env steps. The figure draws both
evaluation curves against env steps; the table gives the returns, the wall time of each command
and its env steps per second. Every run's curve is kept in benchmarks/out/mbpo-halfcheetah.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from pg_results import new_axes
from run import HERE, OUT, ROOT, machine, write_section

FIGURE = HERE / "mbpo_halfcheetah.png"


def train(algo: str, steps: int, evals: int, episodes: int, learning_starts: int) -> dict:
    """One `bellman train` command; its wall time, summary and evaluation curve."""
    out = OUT / f"mbpo-halfcheetah-{algo}"
    if out.exists():
        shutil.rmtree(out)
    args = ["train", algo, "--env", "HalfCheetah-v5", "--backend", "gymnasium"]
    args += ["--steps", str(steps), "--evals", str(evals), "--eval-episodes", str(episodes)]
    args += ["--learning-starts", str(learning_starts)]
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "bellman", *args, "--out", str(out), "--quiet"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "algo": algo,
        "command": "bellman " + " ".join(args),
        "steps": steps,
        "wall_s": wall,
        "compile_s": summary["compile_s"],
        "train_s": summary["train_s"],
        "final": summary["final_return_per_seed"][0],
        "curve": [(r["step"], r["eval_return"][0]) for r in records if "eval_return" in r],
    }


def plot(runs: list[dict], episodes: int) -> None:
    fig, ax = new_axes(f"HalfCheetah-v5, 1 seed: evaluation return ({episodes} episodes)")
    for run in runs:
        steps, returns = zip(*run["curve"], strict=True)
        ax.plot(steps, returns, marker="o", label=f"{run['algo'].upper()} ({run['wall_s']:.0f} s)")
    ax.legend()
    fig.savefig(FIGURE, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--learning-starts", type=int, default=5000)
    parser.add_argument("--note", default="", help="a sentence on how the run was made")
    args = parser.parse_args()
    meta = machine()
    runs = [
        train(algo, args.steps, args.evals, args.episodes, args.learning_starts)
        for algo in ("mbpo", "sac")
    ]
    (OUT / "mbpo-halfcheetah.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    plot(runs, args.episodes)
    lines = [args.note, ""] if args.note else []
    every = args.steps // args.evals
    lines += [
        f"1 seed of each, one command after the other; {args.learning_starts:,} uniform-random "
        f"steps first for both; an evaluation of {args.episodes} fresh episodes every "
        f"{every:,} env steps (the figure: `benchmarks/mbpo_halfcheetah.png`).",
        "",
        "| algorithm | command | "
        + " | ".join(f"{step:,}" for step, _ in runs[0]["curve"])
        + " | wall s (compile s) | env steps/s |",
        "|---|---|" + "---:|" * (len(runs[0]["curve"]) + 2),
    ]
    for run in runs:
        returns = " | ".join(f"{ret:.0f}" for _, ret in run["curve"])
        lines.append(
            f"| {run['algo']} | `{run['command']}` | {returns} | {run['wall_s']:.0f} "
            f"({run['compile_s']:.0f}) | {run['steps'] / run['train_s']:.1f} |"
        )
    mbpo, sac = runs
    lines += [
        "",
        f"- At {args.steps:,} env steps: MBPO {mbpo['final']:.0f}, SAC {sac['final']:.0f}; MBPO "
        f"took {mbpo['wall_s'] / sac['wall_s']:.1f}x SAC's wall time.",
        "",
        f"![MBPO and SAC on HalfCheetah-v5]({FIGURE.name})",
    ]
    body = "\n".join(lines)
    write_section("mbpo-halfcheetah", body, meta, "python benchmarks/mbpo_halfcheetah.py")
    print(body)


if __name__ == "__main__":
    main()
