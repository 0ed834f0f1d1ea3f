"""Domain randomisation against nominal training, on the same grid of held-out physics; writes
RESULTS.md's sections sim2real-cartpole and sim2real-pendulum and benchmarks/sim2real_<env>.png.

    python benchmarks/sim2real_results.py [--only cartpole,pendulum] [--note "..."]

For each env (compiled, gymnax): one `bellman train` on the nominal parameters and one with
`--randomize` over the grid's box (the same algorithm, settings, seeds and budget), then
`bellman eval RUN --params-grid ...` on each: every seed's greedy return at every grid point
(20 episodes each) and at the nominal parameters. A cell *holds* when the mean over seeds is at
least the run's own nominal return less a tenth of its size (bellman.experiment.robustness).
The grid's points are not values either run trained on (the randomized run's draws are
continuous); its box is the randomized run's training box.

- cartpole: PPO (its defaults), 500,000 steps, 4 seeds; pole mass x pole length.
- pendulum: SAC (its pendulum preset), 30,000 steps, 4 seeds; mass x length.
Every run's summary and map are kept in benchmarks/out/sim2real-results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import numpy as np
from run import HERE, OUT, ROOT, machine, write_section

BELLMAN = [sys.executable, "-m", "bellman"]
BASE = OUT / "sim2real"

WORKLOADS = {
    "cartpole": {
        "env": "CartPole-v1",
        "train": ["ppo", "--steps", "500000", "--seeds", "4"],
        "ranges": {"masspole": (0.05, 2.0, 7), "length": (0.1, 2.0, 7)},
        "what": "PPO (its defaults), 500,000 env steps per seed, 4 seeds",
    },
    "pendulum": {
        "env": "Pendulum-v1",
        "train": ["sac", "--preset", "pendulum", "--steps", "30000", "--seeds", "4"],
        "ranges": {"m": (0.5, 2.5, 5), "l": (0.5, 2.0, 7)},
        "what": "SAC (its pendulum preset), 30,000 env steps per seed, 4 seeds",
    },
}


def bellman(*args: str) -> str:
    result = subprocess.run([*BELLMAN, *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bellman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def train_and_map(name: str, spec: dict, randomized: bool) -> dict:
    """Train one run (fresh) and map it over the workload's grid."""
    out = BASE / f"{name}-{'randomized' if randomized else 'nominal'}"
    shutil.rmtree(out, ignore_errors=True)
    ranges = spec["ranges"]
    args = ["train", *spec["train"], "--env", spec["env"], "--evals", "0", "--quiet"]
    if randomized:
        args += ["--randomize", ",".join(f"{n}={lo}:{hi}" for n, (lo, hi, _) in ranges.items())]
    args += ["--out", str(out.relative_to(ROOT))]
    bellman(*args)
    summary = json.loads((out / "summary.json").read_text())
    grid = ",".join(f"{n}={lo}:{hi}:{k}" for n, (lo, hi, k) in ranges.items())
    mapped = json.loads(bellman("eval", str(out), "--params-grid", grid, "--json"))
    return {"command": "bellman " + " ".join(args), "summary": summary, "map": mapped}


def figure(name: str, runs: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bellman.experiment.robustness import plot_map

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, kind in zip(axes, ("nominal", "randomized"), strict=True):
        plot_map(runs[kind]["map"], ax=ax)
    fig.tight_layout()
    path = HERE / f"sim2real_{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def grid_table(result: dict) -> list[str]:
    names = list(result["grid"])
    first, second = (result["grid"][n] for n in names)
    mean, held = np.asarray(result["return_mean"]), np.asarray(result["held"])
    lines = [
        f"| {names[0]} \\ {names[1]} | " + " | ".join(f"{y:.3g}" for y in second) + " |",
        "|---|" + "---:|" * len(second),
    ]
    for i, x in enumerate(first):
        cells = [
            f"**{mean[i, j]:.1f}**" if held[i, j] else f"{mean[i, j]:.1f}"
            for j in range(len(second))
        ]
        lines.append(f"| {x:.3g} | " + " | ".join(cells) + " |")
    return lines


def markdown(name: str, spec: dict, runs: dict, note: str) -> str:
    ranges = spec["ranges"]
    box = ", ".join(f"{n} {lo} to {hi}" for n, (lo, hi, _) in ranges.items())
    cells = int(np.prod([k for _, _, k in ranges.values()]))
    lines = [note, ""] if note else []
    lines += [
        f"{spec['env']} (compiled), {spec['what']}: trained on the nominal parameters, and with "
        f"`--randomize` drawing {box} uniformly per episode; each evaluated at the {cells} "
        "points of the grid below and at the nominal parameters, 20 episodes per seed. A cell "
        "holds when its mean return is at least the run's own nominal return less a tenth of "
        f"its size. Figure: benchmarks/{figure(name, runs)} (held cells outlined, the nominal "
        "point marked).",
        "",
        "| trained on | nominal return | cells held | fraction held |",
        "|---|---:|---:|---:|",
    ]
    for kind in ("nominal", "randomized"):
        mapped = runs[kind]["map"]
        held = int(np.asarray(mapped["held"]).sum())
        lines.append(
            f"| {kind} | {mapped['nominal_return']:.1f} | {held} of {cells} | "
            f"{mapped['held_fraction']:.2f} |"
        )
    for kind in ("nominal", "randomized"):
        lines += ["", f"Mean greedy return over seeds, trained {kind} (held cells in bold):", ""]
        lines += grid_table(runs[kind]["map"])
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="cartpole,pendulum")
    parser.add_argument("--note", default="", help="a sentence on how the runs were made")
    args = parser.parse_args()
    meta = machine()
    BASE.mkdir(parents=True, exist_ok=True)
    saved = OUT / "sim2real-results.json"
    record = json.loads(saved.read_text()) if saved.exists() else {}
    for name in args.only.split(","):
        spec = WORKLOADS[name]
        runs = {kind: train_and_map(name, spec, kind == "randomized")
                for kind in ("nominal", "randomized")}  # fmt: skip
        record[name] = {"meta": meta, "runs": runs}
        saved.write_text(json.dumps(record, indent=1, default=str))
        write_section(
            f"sim2real-{name}",
            markdown(name, spec, runs, args.note),
            meta,
            "python benchmarks/sim2real_results.py",
        )


if __name__ == "__main__":
    main()
