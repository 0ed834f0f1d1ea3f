"""DQN's results, each a `bellman train` command run here; writes RESULTS.md's dqn-results section.

    python benchmarks/dqn_results.py [--only cartpole,lunarlander,minatar,atari]

- cartpole: compiled CartPole-v1, 8 seeds in one command, 500,000 steps, the defaults (vanilla
  DQN) and with --double-q;
- lunarlander: LunarLander-v3 on the gymnasium backend, 3 seeds in one command;
- minatar: Breakout-MinAtar, compiled, 4 seeds in one command, 2,000,000 steps, a learning curve
  (benchmarks/dqn_minatar_breakout.png);
- atari: ALE/Breakout-v5 on the gymnasium backend, 50,000 steps with the Nature preset (learning
  from step 10,000, a 100k replay), next to Stable-Baselines3's DQN on the same game with the
  same settings, run in the same command.
Every run's summary is kept in benchmarks/out/dqn-results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from run import BELLMAN, HERE, OUT, machine, peer_run, timed, write_section

RUNS = {
    "cartpole": [
        ("CartPole-v1, defaults", ["dqn", "--env", "CartPole-v1", "--seeds", "8"]),
        ("CartPole-v1, --double-q", ["dqn", "--env", "CartPole-v1", "--seeds", "8", "--double-q"]),
    ],
    "lunarlander": [
        (
            "LunarLander-v3 (gymnasium), --double-q --anneal-lr",
            [
                "dqn", "--env", "LunarLander-v3", "--backend", "gymnasium", "--seeds", "3",
                "--steps", "400000", "--num-envs", "1", "--train-frequency", "4",
                "--gradient-steps", "4", "--learning-rate", "6.3e-4", "--batch-size", "128",
                "--buffer-size", "50000", "--learning-starts", "1000",
                "--target-update-interval", "250", "--exploration-fraction", "0.12",
                "--exploration-final-eps", "0.1", "--double-q", "--anneal-lr",
            ],
        )
    ],
    "minatar": [
        (
            "Breakout-MinAtar, --preset minatar --train-frequency 4",
            [
                "dqn", "--env", "Breakout-MinAtar", "--preset", "minatar", "--seeds", "4",
                "--steps", "2000000", "--train-frequency", "4", "--evals", "20",
            ],
        )
    ],
    "atari": [
        (
            "ALE/Breakout-v5 (gymnasium), Nature preset",
            [
                "dqn", "--env", "ALE/Breakout-v5", "--steps", "50000", "--buffer-size", "100000",
                "--learning-starts", "10000", "--target-update-interval", "250",
                "--eval-episodes", "5", "--checkpoint-every", "50000",
            ],
        )
    ],
}  # fmt: skip


ATARI_SB3_ARGS = ["--env", "ALE/Breakout-v5", "--steps", "50000", "--learning-starts", "10000"]


def bellman(tag: str, args: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="dqn-results-")) / "run"
    wall, _ = timed([*BELLMAN, "train", *args, "--quiet", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [
        {"step": r["step"], "eval_return": r["eval_return"]} for r in records if "eval_return" in r
    ]
    train = [
        {"step": r["step"], "episode_return": r["episode_return"]}
        for r in records
        if "episode_return" in r
    ]
    config = json.loads((out / "config.json").read_text())["config"]
    shutil.rmtree(out.parent, ignore_errors=True)
    return {
        "run": tag,
        "command": "bellman train " + " ".join(args),
        "process_s": wall,
        "summary": summary,
        "eval_curve": curve,
        "train_curve": train,
        "config": config,
    }


def minatar_plot(result: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, key in (("greedy evaluation", "eval_curve"), ("training episodes", "train_curve")):
        points = result[key]
        field = "eval_return" if key == "eval_curve" else "episode_return"
        steps = np.array([p["step"] for p in points])
        values = np.array([p[field] for p in points], np.float64)  # [points, seeds]
        mean = np.nanmean(values, axis=1)
        ax.plot(steps, mean, label=f"{name} (mean of {values.shape[1]} seeds)")
        ax.fill_between(steps, np.nanmin(values, axis=1), np.nanmax(values, axis=1), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title("DQN on Breakout-MinAtar (shaded: min to max over seeds)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def line(result: dict) -> str:
    s = result["summary"]
    per_seed = ", ".join(f"{v:.1f}" for v in s["final_return_per_seed"])
    return (
        f"| {result['run']} | {s['steps']:,} | {s['seeds']} | {s['final_return_mean']:.1f} "
        f"({per_seed}) | {s['compile_s']:.1f} | {s['train_s']:.0f} | {s['steps_per_s']:,.0f} |"
    )


def markdown(data: dict) -> str:
    lines = [
        "Each row is one `bellman train` command (listed in `benchmarks/dqn_results.py`); the "
        "return is the evaluation policy's mean over 20 episodes per seed (5 for Atari) after "
        "training.",
        "",
        "| run | env steps per seed | seeds | final return, mean (per seed) | compile s | "
        "train s | env steps/s (all seeds) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for group in ("cartpole", "lunarlander", "minatar", "atari"):
        for result in data.get(group, []):
            if "summary" in result:
                lines.append(line(result))
    atari = data.get("atari", [])
    sb3 = next((r for r in atari if r.get("library") == "stable-baselines3"), None)
    ours = next((r for r in atari if "summary" in r), None)
    if sb3 and ours:
        s = ours["summary"]
        sb3_rate = sb3["steps"] / sb3["train_s"]
        lines += [
            "",
            f"Atari Breakout, 50,000 steps, the same settings, in the same command: bellman "
            f"{s['steps_per_s']:,.0f} env steps/s (acting and learning), Stable-Baselines3 "
            f"{sb3_rate:,.0f} env "
            f"steps/s: {s['steps_per_s'] / sb3_rate:.2f}x. Final returns (5 games): bellman "
            f"{s['final_return_mean']:.1f}, Stable-Baselines3 {sb3['final_return_mean']:.1f}.",
        ]
    if data.get("minatar"):
        lines += ["", "![DQN on Breakout-MinAtar](dqn_minatar_breakout.png)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(RUNS))
    parser.add_argument("--render", action="store_true", help="rewrite RESULTS.md; run nothing")
    args = parser.parse_args()
    saved = OUT / "dqn-results.json"
    data = json.loads(saved.read_text()) if saved.exists() else {}
    if not args.render:
        for group in args.only.split(","):
            results = []
            for tag, cmd in RUNS[group]:
                print(tag, flush=True)
                results.append(bellman(tag, cmd))
            if group == "atari":
                print("Stable-Baselines3 on ALE/Breakout-v5", flush=True)
                tag = "Stable-Baselines3, ALE/Breakout-v5"
                results.append(peer_run(tag, "sb3", "sb3_dqn.py", ATARI_SB3_ARGS))
            # read again: another group may have been saved meanwhile by another command
            data = json.loads(saved.read_text()) if saved.exists() else {}
            data[group] = results
            data["machine"] = machine()
            OUT.mkdir(exist_ok=True)
            saved.write_text(json.dumps(data, indent=2))
    if data.get("minatar"):
        minatar_plot(data["minatar"][0], HERE / "dqn_minatar_breakout.png")
    write_section(
        "dqn-results",
        markdown(data),
        data["machine"],
        "python benchmarks/dqn_results.py [--only ...]",
    )
    print(markdown(data))


if __name__ == "__main__":
    main()
