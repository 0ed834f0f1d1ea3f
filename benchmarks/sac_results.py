"""Off-policy continuous-control results, each a `bellman train` command run here; writes
RESULTS.md's offpolicy-results section.

    python benchmarks/sac_results.py [--only pendulum,halfcheetah]

- pendulum: compiled Pendulum-v1, 8 seeds in one command each, 20,000 steps: TD3 and DDPG (their
  defaults); SAC's 8-seed run with the same settings (its Pendulum preset) is part of the
  sac-pendulum speed workload (`python benchmarks/run.py --workload sac-pendulum`);
- halfcheetah: SAC on HalfCheetah-v5, gymnasium backend, 1 seed, 300,000 steps (its MuJoCo preset,
  picked automatically), its learning curve in benchmarks/sac_halfcheetah.png; then, in the same
  command, Stable-Baselines3's SAC with the same settings (peers/sb3_sac.py) for 15,000 steps,
  learning from step 10,000. Only rates of acting and learning are compared: Stable-Baselines3's
  over its steps after learning starts, bellman's over its own (and, as a check of the machine's
  load, over its last 12,000 steps, right before Stable-Baselines3's run).
Every run's summary, curves and resolved settings are kept in benchmarks/out/sac-results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from pg_results import commands, curve, measured, new_axes, run_groups, settings, table
from run import BELLMAN, HERE, OUT, peer_run, timed, write_section

RUNS = {
    "pendulum": [
        (
            f"Pendulum-v1, {algo.upper()}",
            [algo, "--env", "Pendulum-v1", "--seeds", "8", "--steps", "20000"],
        )
        for algo in ("td3", "ddpg")
    ],
    "halfcheetah": [
        (
            "HalfCheetah-v5 (gymnasium), SAC",
            [
                "sac", "--env", "HalfCheetah-v5", "--backend", "gymnasium", "--steps", "300000",
                "--evals", "15", "--eval-episodes", "5",
            ],
        )
    ],
}  # fmt: skip

SB3_TAG = "Stable-Baselines3 SAC, HalfCheetah-v5"
HALFCHEETAH_FIGURE = HERE / "sac_halfcheetah.png"


def bellman(tag: str, args: list[str]) -> dict:
    """Run one `bellman train` command; keep its summary, curves, rate records and config."""
    out = Path(tempfile.mkdtemp(prefix="sac-results-")) / "run"
    wall, _ = timed([*BELLMAN, "train", *args, "--quiet", "--out", str(out)])
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    result = {
        "run": tag,
        "command": "bellman train " + " ".join(args),
        "process_s": wall,
        "summary": json.loads((out / "summary.json").read_text()),
        "eval_curve": [
            {"step": r["step"], "eval_return": r["eval_return"]}
            for r in records
            if "eval_return" in r
        ],
        "train_curve": [
            {"step": r["step"], "episode_return": r["episode_return"]}
            for r in records
            if "episode_return" in r
        ],
        "clock": [{"step": r["step"], "time_s": r["time_s"]} for r in records if "time_s" in r],
        "config": json.loads((out / "config.json").read_text())["config"],
    }
    shutil.rmtree(out.parent, ignore_errors=True)
    return result


LAST_STEPS = 12_000
"""bellman's rate on HalfCheetah is also given over the run's last steps, right before the peer's
run: with the machine's load unchanged, it matches the whole run's."""


def learning_rate_of(result: dict, after: int | None = None) -> float:
    """bellman's env steps/s from the log record at step `after` (default: learning starts) to
    the last, by the records' wall clock (which counts the evaluations in between too, so the
    rate is a little lower than acting and learning alone)."""
    start = result["config"]["learning_starts"] if after is None else after
    clock = [c for c in result["clock"] if c["step"] >= start]
    first, last = clock[0], clock[-1]
    return (last["step"] - first["step"]) / (last["time_s"] - first["time_s"])


def halfcheetah_plot(result: dict, path: Path) -> None:
    fig, ax = new_axes("SAC on HalfCheetah-v5, 1 seed")
    for name, key, field in (
        ("evaluation policy (5 episodes)", "eval_curve", "eval_return"),
        ("training episodes", "train_curve", "episode_return"),
    ):
        steps, values = curve(result[key], field)
        ax.plot(steps, np.nanmean(values, axis=1), label=name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def markdown(data: dict) -> str:
    lines = [
        "Each row is one `bellman train` command (listed under each table and in "
        "`benchmarks/sac_results.py`); the final return is bellman's evaluation of the "
        "deterministic policy after training (mu(s) for DDPG and TD3, the squashed mean for "
        "SAC), the mean over the episodes given per seed; env steps/s counts the training chunks "
        "alone (acting and learning, no evaluation).",
    ]
    if data.get("pendulum"):
        results = data["pendulum"]
        lines += [
            "",
            "**Pendulum-v1**, compiled, 8 seeds in one command each, 20,000 steps "
            f"{measured(data, 'pendulum')}. Targets: TD3 >= -200, DDPG >= -250 (SAC's 8 seeds: "
            "the sac-pendulum section, target >= -200).",
            "",
            *table(results),
            "",
            *commands(results),
            "",
            *(f"- {r['run']} settings: {settings(r)}." for r in results),
        ]
    if data.get("halfcheetah"):
        ours = next(r for r in data["halfcheetah"] if "summary" in r)
        sb3 = next(r for r in data["halfcheetah"] if r.get("library") == "stable-baselines3")
        s = ours["summary"]
        last = learning_rate_of(ours, s["steps"] - LAST_STEPS)
        lines += [
            "",
            f"**HalfCheetah-v5**, SAC, gymnasium backend, 1 seed, {s['steps']:,} steps "
            f"{measured(data, 'halfcheetah')}: final return {s['final_return_mean']:.1f} "
            f"({s['eval_episodes']} episodes), {learning_rate_of(ours):,.0f} env steps/s while "
            "learning, over the whole run.",
            "",
            *table([ours]),
            "",
            *commands([ours]),
            "",
            f"The settings, as the run resolved them: {settings(ours)}.",
            "",
            "Then, in the same command, Stable-Baselines3's SAC (`benchmarks/peers/sb3_sac.py`: "
            "the same settings, PyTorch on the CPU) for 15,000 steps, learning from step 10,000: "
            f"{sb3['learning_steps_per_s']:,.1f} env steps/s while learning, against bellman's "
            f"{learning_rate_of(ours):,.1f} over its whole run after learning starts (evaluations "
            f"included) and {last:,.1f} over its last {LAST_STEPS:,} steps, just before: "
            f"{learning_rate_of(ours) / sb3['learning_steps_per_s']:.2f}x.",
        ]
    if data.get("halfcheetah"):
        lines += ["", "![SAC on HalfCheetah-v5](sac_halfcheetah.png)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(RUNS), help="comma list of " + ", ".join(RUNS))
    parser.add_argument("--render", action="store_true", help="rewrite RESULTS.md; run nothing")
    args = parser.parse_args()
    groups = args.only.split(",")
    if unknown := [g for g in groups if g not in RUNS]:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    saved = OUT / "sac-results.json"

    def peers(group: str) -> list[dict]:
        if group != "halfcheetah":
            return []
        print(SB3_TAG, flush=True)
        sb3_args = ["--env", "HalfCheetah-v5", "--steps", "15000"]
        return [peer_run(SB3_TAG, "sb3", "sb3_sac.py", sb3_args)]

    data = run_groups(RUNS, [] if args.render else groups, saved, bellman, peers)
    if not data:
        parser.error(f"nothing to render: {saved} does not exist")
    if data.get("halfcheetah"):
        halfcheetah_plot(next(r for r in data["halfcheetah"] if "summary" in r), HALFCHEETAH_FIGURE)
    write_section(
        "offpolicy-results",
        markdown(data),
        data["machine"],
        "python benchmarks/sac_results.py [--only ...]",
    )
    print(markdown(data))


if __name__ == "__main__":
    main()
