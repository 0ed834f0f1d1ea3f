"""MuZero on CartPole-v1, bellman against LightZero 0.2.0 (PyTorch, C++ search trees), side by
side in one run; writes RESULTS.md's section muzero-lightzero.

    python benchmarks/lightzero_compare.py [--seeds 0,1] [--budget-s 480] [--eval-every 4000]

For each seed, one process of each library, one after the other, each from process start:
- LightZero: its own zoo config for CartPole (`benchmarks/peers/lightzero_muzero.py`, one
  thread, `policy.cuda=False`, CartPole-v1's 500-step cap), until its first evaluation that
  reaches the target or the wall budget;
- bellman: `bellman train muzero --env CartPole-v1` (the defaults, one seed), 100,000 env steps.
Both evaluate every `--eval-every` env steps on 10 episodes; the result is the first evaluation
whose mean return reaches 475. Reported: the wall time from process start to that evaluation
(imports and compiling included), the env steps it took, and the env steps per second of the
whole run (acting and learning). The LightZero venv is made as the peer script's docstring says.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import HERE, OUT, ROOT, machine, write_section

PEER = HERE / ".venvs" / "lightzero" / "bin" / "python"
TARGET = 475.0


def lightzero(seed: int, budget: float, eval_every: int) -> dict:
    cmd = [str(PEER), str(HERE / "peers" / "lightzero_muzero.py"), "--env", "cartpole"]
    cmd += ["--max-env-steps", "100000", "--target", str(TARGET), "--seed", str(seed)]
    cmd += ["--eval-every", str(eval_every), "--eval-episodes", "10"]
    cmd += ["--max-wall-s", str(budget)]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    process = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"LightZero failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    reached = result["time_to_target_s"]
    return {
        "library": "LightZero 0.2.0",
        "seed": seed,
        "process_s": process,
        "to_target_s": None if reached is None else result["setup_s"] + reached,
        "steps_to_target": result["steps_to_target"],
        "env_steps": result["env_steps"],
        "steps_per_s": result["steps_per_s"],
        "final_return": result["final_return"],
        "curve": result["curve"],
        "detail": result,
    }


def bellman(seed: int, eval_every: int, cache: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-")) / "run"
    steps = 100_000
    cmd = [sys.executable, "-m", "bellman", "train", "muzero", "--env", "CartPole-v1"]
    cmd += ["--steps", str(steps), "--seed", str(seed), "--evals", str(steps // eval_every)]
    cmd += ["--eval-episodes", "10", "--out", str(out), "--quiet"]
    start = time.perf_counter()
    env = {"BELLMAN_CACHE_DIR": str(cache)}
    import os

    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env={**os.environ, **env})
    process = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # (the evaluation after the last update is a record of its own, at the end of the run)
    evals = [{"time_s": summary["wall_s"], **r} for r in records if "eval_return" in r]
    startup = process - summary["wall_s"]  # the interpreter and imports, before train() starts
    first = next((r for r in evals if r["eval_return"][0] >= TARGET), None)
    return {
        "library": "bellman",
        "seed": seed,
        "process_s": process,
        "compile_s": summary["compile_s"],
        "to_target_s": None if first is None else startup + first["time_s"],
        "steps_to_target": None if first is None else first["step"],
        "env_steps": summary["steps"],
        "steps_per_s": summary["steps"] / (summary["wall_s"] - summary["compile_s"]),
        "final_return": summary["final_return_mean"],
        "curve": [(r["step"], r["time_s"] + startup, r["eval_return"][0]) for r in evals],
    }


def fmt(x: float | None, spec: str = ".0f") -> str:
    return "not reached" if x is None else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--budget-s", type=float, default=480)
    parser.add_argument("--eval-every", type=int, default=4000)
    parser.add_argument(
        "--report", action="store_true", help="only write the section from the saved runs"
    )
    args = parser.parse_args()
    saved = OUT / "muzero-lightzero.json"
    if args.report:
        data = json.loads(saved.read_text())
        write(data["meta"], data["runs"], args)
        return
    if not PEER.exists():
        raise SystemExit(
            f"make the LightZero venv first (see {HERE / 'peers/lightzero_muzero.py'})"
        )
    meta = machine()
    cache = Path(tempfile.mkdtemp(prefix="bellman-cache-"))
    runs = []
    OUT.mkdir(exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        print(f"seed {seed}: LightZero, bellman", flush=True)
        runs.append(lightzero(seed, args.budget_s, args.eval_every))
        runs.append(bellman(seed, args.eval_every, cache))
        data = {"meta": meta, "runs": runs}
        saved.write_text(json.dumps(data, indent=1))
    write(meta, runs, args)


def write(meta: dict, runs: list[dict], args: argparse.Namespace) -> None:
    lines = [
        f"MuZero on CartPole-v1 (500-step episodes), target: an evaluation of 10 episodes with "
        f"mean return >= {TARGET:.0f}, evaluated every {args.eval_every:,} env steps. LightZero: "
        "its zoo config (8 envs, 25 simulations, 100 updates of 256 per collect of 8 episodes), "
        f"one thread, CPU, stopped at the target or after {args.budget_s:.0f} s; bellman: "
        "`bellman train muzero --env CartPole-v1` (8 envs, 16 simulations of Gumbel search, one "
        "update of 256 per 4 env steps), 100,000 env steps, one seed per process (a cold "
        "program cache for the first, warm after). Times from process start (imports and "
        "compiling included); env steps/s over the whole run, evaluations included.",
        "",
        "| library | seed | to the target, s | env steps to the target | env steps | "
        "env steps/s | final evaluation | whole process s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['library']} | {r['seed']} | {fmt(r['to_target_s'])} | "
            f"{fmt(r['steps_to_target'], ',')} | {r['env_steps']:,} | {r['steps_per_s']:,.1f} | "
            f"{r['final_return']:.1f} | {r['process_s']:.0f} |"
        )
    pairs = list(zip(runs[::2], runs[1::2], strict=True))
    speed = [b["steps_per_s"] / a["steps_per_s"] for a, b in pairs]
    lines += [
        "",
        "- env steps per second, bellman / LightZero: "
        + ", ".join(f"seed {a['seed']}: {x:.0f}x" for (a, _), x in zip(pairs, speed, strict=True))
        + ".",
    ]
    for a, b in pairs:
        if a["to_target_s"] is not None and b["to_target_s"] is not None:
            ratio = a["to_target_s"] / b["to_target_s"]
            lines.append(f"- seed {a['seed']}: bellman reached the target {ratio:.1f}x sooner.")
        elif b["to_target_s"] is not None:
            lines.append(
                f"- seed {a['seed']}: bellman reached the target in {b['to_target_s']:.0f} s; "
                f"LightZero had not after {a['process_s']:.0f} s: at least "
                f"{a['process_s'] / b['to_target_s']:.1f}x sooner."
            )
        else:
            lines.append(f"- seed {a['seed']}: bellman did not reach the target.")
    body = "\n".join(lines)
    write_section("muzero-lightzero", body, meta, "python benchmarks/lightzero_compare.py")
    print(body)


if __name__ == "__main__":
    main()
