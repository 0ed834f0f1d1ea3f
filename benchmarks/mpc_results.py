"""Model predictive control with the true dynamics on Pendulum-v1 and RoboParking-v0; writes
RESULTS.md's section mpc-pendulum.

    python benchmarks/mpc_results.py [--steps 1000] [--episodes 20] [--parking-starts 100]

For each planner (CEM, MPPI; the defaults otherwise: horizon 30, 5 iterations of 500 sequences),
one `bellman train mpc --env Pendulum-v1` command: the controller runs one env for `--steps`
steps (five episodes), then the reported evaluation runs `--episodes` fresh episodes. The target
(issue 19): a mean return >= -200 over 20 episodes. The planning time per step is the control
loop's: the training time (compiling excluded) over the steps, one env planned per step; and the
evaluation's, 20 envs planned at once per step.

RoboParking-v0 (discrete pushes, one categorical distribution per planned step): the controller
(CEM, the defaults) drives from a fixed set of `--parking-starts` random starts (the evaluation's
keys, seed 0), each episode run to the goal or the 200-step limit; the target: every start
reaches the goal (its episode ends before the limit).
"""

from __future__ import annotations

import argparse
import dataclasses
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
    parser.add_argument("--parking-starts", type=int, default=100)
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
    parking = park(args.parking_starts)
    (OUT / "mpc-pendulum.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "parking": parking}, indent=1)
    )
    lines += [
        "",
        f"- Target, mean return >= -200 over 20 episodes: **{'met' if passed else 'missed'}**.",
    ]
    reached = sum(length < parking["limit"] for length in parking["lengths"])
    lines += [
        "",
        f"RoboParking-v0, CEM (the defaults), {len(parking['lengths'])} fixed random starts: "
        f"{reached} reached the goal (target: all); moves to park, mean "
        f"{sum(parking['lengths']) / len(parking['lengths']):.1f}, longest "
        f"{max(parking['lengths']):.0f} (the limit: {parking['limit']}); return, mean "
        f"{parking['return_mean']:.1f}; {parking['wall_s']:.1f} s for all of them, compiling "
        "included.",
    ]
    body = "\n".join(lines)
    write_section("mpc-pendulum", body, meta, "python benchmarks/mpc_results.py")
    print(body)


def park(starts: int) -> dict:
    """The MPC controller (CEM, the defaults) from `starts` fixed random RoboParking starts."""
    import jax

    from bellman.algos import mpc
    from bellman.envs import registry
    from bellman.runners.control import evaluate_control

    env = registry.resolve("RoboParking-v0").jax_env
    config = mpc.MPCConfig()
    state = mpc.init(
        jax.random.PRNGKey(0), dataclasses.replace(config, num_envs=starts), env.spec, 1
    )
    start = time.perf_counter()
    run = jax.jit(lambda key: evaluate_control(mpc, config, env, state, key, starts))
    returns, lengths = jax.device_get(run(jax.random.PRNGKey(0)))
    return {
        "lengths": [float(x) for x in lengths],
        "return_mean": float(returns.mean()),
        "limit": env.spec.max_episode_steps,
        "wall_s": time.perf_counter() - start,
    }


if __name__ == "__main__":
    main()
