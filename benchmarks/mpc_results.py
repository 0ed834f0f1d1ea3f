"""Model predictive control with the true dynamics on Pendulum-v1; writes RESULTS.md's section
mpc-pendulum.

    python benchmarks/mpc_results.py [--steps 1000] [--episodes 20]

For each planner (CEM, MPPI; the defaults otherwise: horizon 30, 5 iterations of 500 sequences),
one `bellman train mpc --env Pendulum-v1` command: the controller runs one env for `--steps`
steps (five episodes), then the reported evaluation runs `--episodes` fresh episodes. The target
(issue 19): a mean return >= -200 over 20 episodes. The planning time per step is the control
loop's: the training time (compiling excluded) over the steps, one env planned per step; and the
evaluation's, 20 envs planned at once per step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from run import OUT, ROOT, machine, write_section

PLANNERS = ("cem", "mppi")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    meta = machine()
    rows = []
    for planner in PLANNERS:
        out = OUT / f"mpc-pendulum-{planner}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "bellman", "train", "mpc", "--env", "Pendulum-v1"]
        cmd += ["--planner", planner, "--steps", str(args.steps), "--evals", "0"]
        cmd += ["--eval-episodes", str(args.episodes), "--out", str(out), "--quiet"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
        records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in records if "episode_return" in r]
        online = [x for r in train for x in r["episode_return"] if x is not None]
        rows.append(
            {
                "planner": planner,
                "final_return": summary["final_return_mean"],
                "online_return": sum(online) / len(online) if online else None,
                "step_ms": 1000.0 * summary["train_s"] / args.steps,
                "wall_s": wall,
                "compile_s": summary["compile_s"],
            }
        )
    (OUT / "mpc-pendulum.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"`bellman train mpc --env Pendulum-v1 --planner P --steps {args.steps} --evals 0 "
        f"--eval-episodes {args.episodes}` (horizon 30, 5 iterations of 500 sequences; CEM keeps "
        "50 elites, MPPI weighs with temperature 1). The return is the evaluation's mean over "
        f"{args.episodes} fresh episodes; the online return is that of the training episodes "
        "the controller ran; the planning time per step is the training loop's (one env, "
        "compiling excluded).",
        "",
        "| planner | return, 20 episodes | online return | planning ms per step | compile s "
        "| whole process s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        online = "" if r["online_return"] is None else f"{r['online_return']:.1f}"
        lines.append(
            f"| {r['planner']} | {r['final_return']:.1f} | {online} | {r['step_ms']:.2f} | "
            f"{r['compile_s']:.1f} | {r['wall_s']:.1f} |"
        )
    passed = all(r["final_return"] >= -200 for r in rows)
    lines += [
        "",
        f"- Target, mean return >= -200 over 20 episodes: **{'met' if passed else 'missed'}**.",
    ]
    body = "\n".join(lines)
    write_section("mpc-pendulum", body, meta, "python benchmarks/mpc_results.py")
    print(body)


if __name__ == "__main__":
    main()
