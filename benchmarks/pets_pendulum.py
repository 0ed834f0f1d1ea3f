"""PETS against SAC on Pendulum-v1, sample efficiency measured in one run; writes RESULTS.md's
section pets-pendulum.

    python benchmarks/pets_pendulum.py [--seeds 4] [--pets-steps 3000] [--sac-steps 20000]
                                       [--every 200] [--episodes 5]

Two commands, one after the other on the same machine: `bellman train pets --env Pendulum-v1`
(its defaults) and `bellman train sac --env Pendulum-v1` (the pendulum preset), each with
`--seeds` seeds in one program and an evaluation every `--every` env steps (one Pendulum episode)
of `--episodes` fresh episodes. For each seed, the env steps until its evaluation return first
reaches -200; the table gives their mean over the seeds. The targets (issue 19): PETS's final
return >= -200 (mean over the seeds) within 5,000 env steps, and PETS needing at most a third of
SAC's env steps to reach -200.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from run import OUT, ROOT, machine, write_section

THRESHOLD = -200.0


def train(algo: str, steps: int, seeds: int, every: int, episodes: int) -> dict:
    out = OUT / f"pets-pendulum-{algo}"
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "bellman", "train", algo, "--env", "Pendulum-v1"]
    cmd += ["--seeds", str(seeds), "--steps", str(steps), "--evals", str(steps // every)]
    cmd += ["--eval-episodes", str(episodes), "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval_return"]) for r in evals if "eval_return" in r]
    reached = []
    for seed in range(seeds):
        first = next((step for step, ret in curve if ret[seed] >= THRESHOLD), None)
        reached.append(first)
    return {
        "algo": algo,
        "command": " ".join(["bellman", *cmd[3:-3]]),
        "steps": steps,
        "wall_s": wall,
        "compile_s": summary["compile_s"],
        "train_s": summary["train_s"],
        "final": summary["final_return_per_seed"],
        "reached": reached,
        "curve": curve,
    }


def mean_reached(run: dict) -> float | None:
    """The mean over seeds of the steps to -200, or None if a seed never got there."""
    if any(r is None for r in run["reached"]):
        return None
    return sum(run["reached"]) / len(run["reached"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--pets-steps", type=int, default=3000)
    parser.add_argument("--sac-steps", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args()
    meta = machine()
    runs = [
        train("pets", args.pets_steps, args.seeds, args.every, args.episodes),
        train("sac", args.sac_steps, args.seeds, args.every, args.episodes),
    ]
    (OUT / "pets-pendulum.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    pets, sac = runs
    lines = [
        f"{args.seeds} seeds of each in one command; an evaluation of {args.episodes} fresh "
        f"episodes every {args.every} env steps. Steps to -200: for each seed, the env steps "
        "at its first evaluation with a mean return >= -200.",
        "",
        "| algorithm | command | final return per seed | steps to -200 per seed | mean "
        "| wall s (compile s) |",
        "|---|---|---|---|---:|---:|",
    ]
    for run in runs:
        final = ", ".join(f"{x:.1f}" for x in run["final"])
        reached = ", ".join("never" if r is None else f"{r:,}" for r in run["reached"])
        mean = mean_reached(run)
        shown = "not reached by every seed" if mean is None else f"{mean:,.0f}"
        lines.append(
            f"| {run['algo']} | `{run['command']}` | {final} | {reached} | {shown} "
            f"| {run['wall_s']:.0f} ({run['compile_s']:.0f}) |"
        )
    pets_final = sum(pets["final"]) / len(pets["final"])
    pets_mean, sac_mean = mean_reached(pets), mean_reached(sac)
    ratio = None if pets_mean is None or sac_mean is None else sac_mean / pets_mean
    met_final = pets_final >= THRESHOLD and args.pets_steps <= 5000
    met_ratio = ratio is not None and ratio >= 3.0
    lines += [
        "",
        f"- PETS's final return, mean over seeds: {pets_final:.1f} after {args.pets_steps:,} "
        f"env steps; target >= -200 within 5,000: **{'met' if met_final else 'missed'}**.",
        f"- SAC needed {'-' if ratio is None else f'{ratio:.1f}x'} PETS's env steps to reach "
        f"-200; target at least 3x: **{'met' if met_ratio else 'missed'}**.",
        f"- Wall time per env step (training, compile excluded, all seeds together): PETS "
        f"{1000 * pets['train_s'] / args.pets_steps:.1f} ms, SAC "
        f"{1000 * sac['train_s'] / args.sac_steps:.2f} ms.",
    ]
    body = "\n".join(lines)
    write_section("pets-pendulum", body, meta, "python benchmarks/pets_pendulum.py")
    print(body)


if __name__ == "__main__":
    main()
