"""An Optuna search for PPO on Pendulum-v1; writes RESULTS.md's search-pendulum.

    python benchmarks/search_pendulum.py [--trials 30] [--steps 600000]

One `bellman sweep ppo --env Pendulum-v1 --search optuna` command: 30 trials of 4 seeds each on
the compiled backend, asked 6 at a time (24 members in one program), TPE over the step size,
GAE's lambda, the clip range and the discount around the pendulum preset, median pruning from 10
evaluations during training. The target: a setting whose mean final return over its 4 seeds is
at least -200, and pruning that visibly stops trials (counted).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import ROOT, machine, write_section

SPACE = [
    "learning_rate=1e-4:3e-3",
    "gae_lambda=0.8:0.99",
    "clip_eps=0.1:0.3",
    "gamma=0.9:0.99",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--steps", type=int, default=600_000)
    args = parser.parse_args()
    meta = machine()
    work = Path(tempfile.mkdtemp(prefix="search-"))
    cmd = [sys.executable, "-m", "bellman", "sweep", "ppo", "--env", "Pendulum-v1"]
    cmd += ["--search", "optuna", "--trials", str(args.trials), "--batch", "6", "--seeds", "4"]
    cmd += ["--steps", str(args.steps), "--out", str(work / "search"), "--quiet", "--json"]
    for item in SPACE:
        cmd += ["--range", item]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    table = json.loads(result.stdout.strip().splitlines()[-1])["table"]
    shutil.rmtree(work, ignore_errors=True)
    states = [row["state"] for row in table]
    complete = [row for row in table if row["state"] == "complete"]
    best = max(complete, key=lambda row: row["mean"])
    counts = {s: states.count(s) for s in ("complete", "pruned", "fail")}
    shown = " ".join(item.split("=")[0] for item in SPACE)
    lines = [
        f"`bellman sweep ppo --env Pendulum-v1 --search optuna --trials {args.trials} --batch 6 "
        f"--seeds 4 --steps {args.steps} " + " ".join(f"--range {i}" for i in SPACE) + "` "
        f"(the pendulum preset otherwise; TPE over {shown}; median pruning after 5 trials and a "
        "third of the run, from 10 evaluations during training).",
        "",
        f"- Wall time of the whole search: {wall:.0f} s; trials: {counts['complete']} complete, "
        f"**{counts['pruned']} pruned**, {counts['fail']} failed.",
        f"- Best setting: {best['label']}: mean final return over its 4 seeds "
        f"**{best['mean']:.1f}** "
        f"(per seed {', '.join(f'{x:.1f}' for x in best['final_per_seed'])}); target >= -200 "
        f"{'met' if best['mean'] >= -200 else 'missed'}.",
        "",
        "| trial | setting | state | mean final return | IQM [95% bootstrap] |",
        "|---:|---|---|---:|---:|",
    ]
    for row in sorted(table, key=lambda r: r["trial"]):
        if row["state"] == "complete":
            value = f"{row['mean']:.1f}"
            iqm = f"{row['iqm']:.1f} [{row['iqm_low']:.1f}, {row['iqm_high']:.1f}]"
        else:
            value = iqm = "-"
        lines.append(f"| {row['trial']} | {row['label']} | {row['state']} | {value} | {iqm} |")
    body = "\n".join(lines)
    write_section("search-pendulum", body, meta, "python benchmarks/search_pendulum.py")
    print(body)


if __name__ == "__main__":
    main()
