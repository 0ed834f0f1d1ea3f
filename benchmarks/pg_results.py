"""Policy-gradient results, each a `bellman train` command run here; writes RESULTS.md's pg-results.

    python benchmarks/pg_results.py [--only cartpole,ablation,pendulum,halfcheetah]
                                    [--sb3-steps 200000]

- cartpole: compiled CartPole-v1, 8 seeds in one command each: REINFORCE for 1,000,000 steps, A2C
  for 500,000 and PPO with the KL-penalty objective (--objective kl) for 500,000;
- ablation: REINFORCE on CartPole-v1, 8 seeds, 1,000,000 steps, weighting the log-probability
  gradients by the whole episode's return (--baseline none --no-reward-to-go), by the reward-to-go
  (--baseline none) and by the reward-to-go minus a learned V(s) (--baseline learned); the
  training curves go to docs/figures/reinforce_ablation.png;
- pendulum: PPO on Pendulum-v1, compiled, 8 seeds, 1,000,000 steps, --preset pendulum;
- halfcheetah: PPO on HalfCheetah-v5, gymnasium backend, 1 seed, 1,000,000 steps, --preset mujoco,
  its learning curve in benchmarks/ppo_halfcheetah.png, next to Stable-Baselines3's PPO with the
  PPO paper's MuJoCo settings (peers/sb3_ppo_mujoco.py) run in the same command for --sb3-steps
  steps (only its env steps/s is compared).
Every run's summary, curves and resolved settings are kept in benchmarks/out/pg-results.json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from dqn_results import bellman, line
from run import HERE, OUT, ROOT, machine, peer_run, write_section

RUNS = {
    "cartpole": [
        (
            "CartPole-v1, REINFORCE",
            ["reinforce", "--env", "CartPole-v1", "--seeds", "8", "--steps", "1000000"],
        ),
        ("CartPole-v1, A2C", ["a2c", "--env", "CartPole-v1", "--seeds", "8", "--steps", "500000"]),
        (
            "CartPole-v1, PPO --objective kl",
            [
                "ppo", "--env", "CartPole-v1", "--seeds", "8", "--objective", "kl",
                "--steps", "500000",
            ],
        ),
    ],
    "ablation": [
        (
            "whole-episode return (--baseline none --no-reward-to-go)",
            [
                "reinforce", "--env", "CartPole-v1", "--seeds", "8", "--steps", "1000000",
                "--baseline", "none", "--no-reward-to-go",
            ],
        ),
        (
            "reward-to-go (--baseline none)",
            [
                "reinforce", "--env", "CartPole-v1", "--seeds", "8", "--steps", "1000000",
                "--baseline", "none",
            ],
        ),
        (
            "reward-to-go minus learned V(s) (--baseline learned)",
            [
                "reinforce", "--env", "CartPole-v1", "--seeds", "8", "--steps", "1000000",
                "--baseline", "learned",
            ],
        ),
    ],
    "pendulum": [
        (
            "Pendulum-v1, PPO --preset pendulum",
            [
                "ppo", "--env", "Pendulum-v1", "--seeds", "8", "--steps", "1000000",
                "--preset", "pendulum",
            ],
        )
    ],
    "halfcheetah": [
        (
            "HalfCheetah-v5 (gymnasium), PPO --preset mujoco",
            [
                "ppo", "--env", "HalfCheetah-v5", "--backend", "gymnasium", "--steps", "1000000",
                "--preset", "mujoco",
            ],
        )
    ],
}  # fmt: skip

SB3_TAG = "Stable-Baselines3 PPO, HalfCheetah-v5"
ABLATION_FIGURE = ROOT / "docs" / "figures" / "reinforce_ablation.png"
HALFCHEETAH_FIGURE = HERE / "ppo_halfcheetah.png"


def curve(points: list[dict], field: str) -> tuple[np.ndarray, np.ndarray]:
    """The steps `[P]` and the values `[P, seeds]` of a saved curve, without the records where no
    seed has a value (no episode finished in that chunk)."""
    steps = np.array([p["step"] for p in points])
    values = np.array([p[field] for p in points], np.float64).reshape(len(points), -1)
    keep = np.isfinite(values).any(axis=1)
    return steps[keep], values[keep]


def new_axes(title: str) -> tuple[Any, Any]:
    """A matplotlib (Agg) figure and its axes: environment steps against return."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig, ax


def ablation_plot(results: list[dict], path: Path) -> None:
    """Training episode return of each REINFORCE variant: the mean over seeds, shaded +-1 std."""
    seeds = results[0]["summary"]["seeds"]
    fig, ax = new_axes(
        f"REINFORCE on CartPole-v1, training episodes\n(mean of {seeds} seeds, shaded: ±1 std)"
    )
    for result in results:
        steps, values = curve(result["train_curve"], "episode_return")
        mean, std = np.nanmean(values, axis=1), np.nanstd(values, axis=1)
        ax.plot(steps, mean, label=result["run"])
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def halfcheetah_plot(result: dict, path: Path) -> None:
    """bellman's PPO on HalfCheetah: the evaluations during training and the training episodes."""
    fig, ax = new_axes("PPO (--preset mujoco) on HalfCheetah-v5, 1 seed")
    for name, key, field in (
        ("evaluation policy", "eval_curve", "eval_return"),
        ("training episodes", "train_curve", "episode_return"),
    ):
        steps, values = curve(result[key], field)
        ax.plot(steps, np.nanmean(values, axis=1), label=name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def commands(results: list[dict]) -> list[str]:
    return [f"- {r['run']}: `{r['command']}`" for r in results if "command" in r]


def table(results: list[dict]) -> list[str]:
    return [
        "| run | env steps per seed | seeds | final return, mean (per seed) | compile s | "
        "train s | env steps/s (all seeds) |",
        "|---|---:|---:|---|---:|---:|---:|",
        *(line(r) for r in results if "summary" in r),
    ]


def settings(result: dict) -> str:
    """The algorithm's settings as the run resolved them (its config.json)."""
    return ", ".join(f"{k}={v}" for k, v in result["config"].items())


def measured(data: dict, group: str) -> str:
    meta = data["machines"][group]
    return f"(measured {meta['date']}, load average before {meta['load_before'][0]:.2f})"


def ablation_table(results: list[dict]) -> list[str]:
    lines = [
        "| variant | final return, mean ± std over seeds | training return over the run, "
        "mean ± std over seeds | train s | env steps/s (all seeds) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["summary"]
        final = np.asarray(s["final_return_per_seed"], np.float64)
        _, values = curve(r["train_curve"], "episode_return")
        over_run = np.nanmean(values, axis=0)  # [seeds]
        lines.append(
            f"| {r['run']} | {final.mean():.1f} ± {final.std():.1f} "
            f"| {over_run.mean():.1f} ± {over_run.std():.1f} | {s['train_s']:.0f} "
            f"| {s['steps_per_s']:,.0f} |"
        )
    return lines


def markdown(data: dict) -> str:
    episodes = sorted(
        {r["summary"]["eval_episodes"] for g in RUNS for r in data.get(g, []) if "summary" in r}
    )
    lines = [
        "Each row is one `bellman train` command (listed under each table and in "
        "`benchmarks/pg_results.py`); the final return is bellman's evaluation after training, "
        f"the mean over {' or '.join(map(str, episodes))} episodes per seed; env steps/s counts "
        "the training chunks alone "
        "(acting and learning, no evaluation). Each group ran separately (`--only`), at the time "
        "given with it.",
    ]
    if data.get("cartpole"):
        results = data["cartpole"]
        lines += [
            "",
            f"**CartPole-v1**, compiled, 8 seeds in one command each {measured(data, 'cartpole')}:"
            " REINFORCE for 1,000,000 steps, A2C for 500,000, PPO with the KL-penalty objective "
            "(`--objective kl`) for 500,000; every other setting the algorithm's default.",
            "",
            *table(results),
            "",
            *commands(results),
        ]
    if data.get("ablation"):
        results = data["ablation"]
        seeds = results[0]["summary"]["seeds"]
        lines += [
            "",
            f"**REINFORCE ablation**, CartPole-v1, compiled, {seeds} seeds in one command each, "
            f"1,000,000 steps {measured(data, 'ablation')}. What weights each step's "
            "log-probability gradient: the whole episode's return (`--baseline none "
            "--no-reward-to-go`), the return from that step on (`--baseline none`: reward-to-go), "
            "or the reward-to-go minus a learned state value V(s) (`--baseline learned`). Final "
            "return: the evaluation after training, its mean and standard deviation over the "
            "seeds; training return over the run: each seed's mean training-episode return over "
            "all logged chunks (higher: learned sooner), its mean and standard deviation over the "
            "seeds.",
            "",
            *ablation_table(results),
            "",
            *commands(results),
            "",
            "![REINFORCE ablation on CartPole-v1](../docs/figures/reinforce_ablation.png)",
        ]
    if data.get("pendulum"):
        results = data["pendulum"]
        lines += [
            "",
            f"**Pendulum-v1**, PPO, compiled, 8 seeds in one command, 1,000,000 steps, "
            f"`--preset pendulum` {measured(data, 'pendulum')}.",
            "",
            *table(results),
            "",
            *commands(results),
            "",
            f"The preset's settings, as the run resolved them: {settings(results[0])}.",
        ]
    if data.get("halfcheetah"):
        results = data["halfcheetah"]
        ours = next(r for r in results if "summary" in r)
        sb3 = next((r for r in results if r.get("library") == "stable-baselines3"), None)
        s = ours["summary"]
        lines += [
            "",
            f"**HalfCheetah-v5**, PPO, gymnasium backend, 1 seed, {s['steps']:,} steps, "
            f"`--preset mujoco` {measured(data, 'halfcheetah')}: final return "
            f"{s['final_return_mean']:.1f}, wall {s['wall_s']:.0f} s (the whole command "
            f"{ours['process_s']:.0f} s), {s['steps_per_s']:,.0f} env steps/s.",
            "",
            *table([ours]),
            "",
            *commands([ours]),
            "",
            f"The preset's settings, as the run resolved them: {settings(ours)}.",
        ]
        if sb3:
            sb3_rate = sb3["steps"] / sb3["train_s"]
            lines += [
                "",
                "In the same command, Stable-Baselines3's PPO (`benchmarks/peers/sb3_ppo_mujoco.py`"
                ": the PPO paper's MuJoCo settings, 1 env, rollouts of 2048 steps, 10 epochs of "
                "minibatches of 64, Adam at 3e-4, gamma 0.99, GAE 0.95, clip 0.2, no entropy "
                "bonus, separate 64x64 tanh networks, value coefficient 0.5, gradient norm 0.5, "
                "VecNormalize on observations and rewards; PyTorch on the CPU) ran for "
                f"{sb3['steps']:,} steps only (`--sb3-steps`), since only its env steps/s is "
                f"compared: {sb3_rate:,.0f} env steps/s (its `learn`), against bellman's "
                f"{s['steps_per_s']:,.0f}: {s['steps_per_s'] / sb3_rate:.2f}x. Its return after "
                f"those steps, {sb3['final_return_mean']:.1f} ({sb3['eval']}), is not comparable "
                f"with bellman's after {s['steps']:,}.",
            ]
        lines += ["", "![PPO on HalfCheetah-v5](ppo_halfcheetah.png)"]
    return "\n".join(lines)


Runs = dict[str, list[tuple[str, list[str]]]]


def run_groups(
    runs: Runs,
    groups: list[str],
    saved: Path,
    run_bellman: Callable[[str, list[str]], dict],
    peers: Callable[[str], list[dict]],
) -> dict:
    """Run each group's bellman commands, then its peer runs (`peers(group)`), and save the group
    in `saved` (JSON) as soon as it is done, with the machine's state before it; returns all
    saved groups."""
    for group in groups:
        meta = machine()
        results = []
        for tag, cmd in runs[group]:
            print(tag, flush=True)
            results.append(run_bellman(tag, cmd))
        results += peers(group)
        # read again: another group may have been saved meanwhile by another command
        data = json.loads(saved.read_text()) if saved.exists() else {}
        data[group] = results
        data.setdefault("machines", {})[group] = meta
        data["machine"] = meta
        OUT.mkdir(exist_ok=True)
        saved.write_text(json.dumps(data, indent=2))
    return json.loads(saved.read_text()) if saved.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(RUNS), help="comma list of " + ", ".join(RUNS))
    parser.add_argument(
        "--sb3-steps",
        type=int,
        default=200_000,
        help="Stable-Baselines3's env steps on HalfCheetah (only its steps/s is compared)",
    )
    parser.add_argument("--render", action="store_true", help="rewrite RESULTS.md; run nothing")
    args = parser.parse_args()
    groups = args.only.split(",")
    if unknown := [g for g in groups if g not in RUNS]:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    saved = OUT / "pg-results.json"

    def peers(group: str) -> list[dict]:
        if group != "halfcheetah":
            return []
        print(SB3_TAG, flush=True)
        sb3_args = ["--env", "HalfCheetah-v5", "--steps", str(args.sb3_steps)]
        return [peer_run(SB3_TAG, "sb3", "sb3_ppo_mujoco.py", sb3_args)]

    groups = [] if args.render else groups
    data = run_groups(RUNS, groups, saved, bellman, peers)
    if not data:
        parser.error(f"nothing to render: {saved} does not exist")
    if data.get("ablation"):
        ablation_plot(data["ablation"], ABLATION_FIGURE)
    if data.get("halfcheetah"):
        halfcheetah_plot(next(r for r in data["halfcheetah"] if "summary" in r), HALFCHEETAH_FIGURE)
    write_section(
        "pg-results",
        markdown(data),
        data["machine"],
        "python benchmarks/pg_results.py [--only ...]",
    )
    print(markdown(data))


if __name__ == "__main__":
    main()
