"""Domain randomisation against nominal training, on the same grid of held-out physics; writes
RESULTS.md's sections sim2real-cartpole and sim2real-pendulum and benchmarks/sim2real_<env>.png.

    python benchmarks/sim2real_results.py [--only cartpole,pendulum,sysid,halfcheetah]
        [--note "..."] [--reuse] [--redraw]

For each env (compiled, gymnax): one `bellman train` on the nominal parameters and one with
`--randomize` over the grid's box (the same algorithm, settings, seeds and budget), then
`bellman eval RUN --params-grid ...` on each: every seed's greedy return at every grid point
(20 episodes each; HalfCheetah 5) and at the nominal parameters. A cell *holds* when the mean
over seeds is at least the run's own nominal return less a tenth of its size
(bellman.experiment.robustness).
The grid's box is the randomized run's training box, and its points are not values either run
trained on (the randomized run's draws are continuous). Pendulum is mapped on a second grid too,
the part of that box where the torque limit is within reach (m l <= 1; see WORKLOADS), whose
corner is the nominal point.

- cartpole: PPO (its defaults), 500,000 steps, 4 seeds; pole mass x pole length.
- pendulum: SAC (its pendulum preset), 100,000 steps, 4 seeds; mass x length.
- halfcheetah: SAC on the gymnasium backend (its mujoco preset), 100,000 steps, 1 seed; body
  masses x sliding friction, as factors of the model's values (bellman.envs.sim2real_host),
  5 episodes per cell.
- sysid (after pendulum): `bellman identify` on the nominal Pendulum run in a pendulum of other
  mass and length, fine-tuning there with `--init-from` (see SYSID), and the returns before and
  after on the real pendulum.
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
    "halfcheetah": {
        "env": "HalfCheetah-v5",
        "train": [
            "sac",
            "--backend",
            "gymnasium",
            "--preset",
            "mujoco",
            "--steps",
            "100000",
            "--seeds",
            "1",
            "--eval-episodes",
            "5",
        ],
        "ranges": {"mass": (0.5, 1.5, 3), "friction": (0.5, 1.5, 3)},
        "what": "SAC on the gymnasium backend (its mujoco preset), 100,000 env steps, 1 seed",
        "episodes": 5,
    },
    "pendulum": {
        "env": "Pendulum-v1",
        "train": ["sac", "--preset", "pendulum", "--steps", "100000", "--seeds", "4"],
        "ranges": {"m": (0.4, 1.4, 5), "l": (0.4, 1.4, 5)},
        # the torque limit against gravity's largest torque, 2 / (m g l / 2), is at least its
        # nominal value where m l <= 1; past that (the heavy, long corner of the training box)
        # the swing-up needs more swings and no policy keeps 90% of the nominal return, so the
        # box m, l in [0.4, 1.0] is mapped too, where every cell is within the torque's reach
        "grids": [
            {"m": (0.4, 1.4, 5), "l": (0.4, 1.4, 5)},
            {"m": (0.4, 1.0, 7), "l": (0.4, 1.0, 7)},
        ],
        "what": "SAC (its pendulum preset), 100,000 env steps per seed, 4 seeds",
    },
}


def bellman(*args: str) -> str:
    result = subprocess.run([*BELLMAN, *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bellman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def train_and_map(name: str, spec: dict, randomized: bool, reuse: bool = False) -> dict:
    """Train one run (fresh, unless `reuse` and it finished) and map it over the grid."""
    out = BASE / f"{name}-{'randomized' if randomized else 'nominal'}"
    if not (reuse and (out / "summary.json").exists()):
        shutil.rmtree(out, ignore_errors=True)
    ranges = spec["ranges"]
    args = ["train", *spec["train"], "--env", spec["env"], "--evals", "0", "--quiet"]
    if randomized:
        args += ["--randomize", ",".join(f"{n}={lo}:{hi}" for n, (lo, hi, _) in ranges.items())]
    args += ["--out", str(out.relative_to(ROOT))]
    if not (out / "summary.json").exists():
        bellman(*args)
    summary = json.loads((out / "summary.json").read_text())
    episodes = str(spec.get("episodes", 20))
    maps = []
    for box in grids(spec):
        grid = ",".join(f"{n}={lo}:{hi}:{k}" for n, (lo, hi, k) in box.items())
        maps.append(
            json.loads(
                bellman("eval", str(out), "--params-grid", grid, "--episodes", episodes, "--json")
            )
        )
    return {"command": "bellman " + " ".join(args), "summary": summary, "maps": maps}


def grids(spec: dict) -> list[dict]:
    """The grids a workload is mapped on: its training box, unless it names others."""
    return spec.get("grids", [spec["ranges"]])


def figure(name: str, runs: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bellman.experiment.robustness import plot_map

    rows = len(runs["nominal"]["maps"])
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.8 * rows), squeeze=False)
    for g, row in enumerate(axes):
        pair = [runs[kind]["maps"][g] for kind in ("nominal", "randomized")]
        means = [np.asarray(m["return_mean"]) for m in pair]
        limits = (min(m.min() for m in means), max(m.max() for m in means))
        for ax, kind, mapped in zip(row, ("nominal", "randomized"), pair, strict=True):
            plot_map(mapped, ax=ax, limits=limits)
            ax.set_title(f"trained {kind}: {mapped['held_fraction']:.2f} of the grid held")
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
    box = ", ".join(f"{n} {lo} to {hi}" for n, (lo, hi, _) in spec["ranges"].items())
    boxes = grids(spec)
    backend = "gymnasium" if "gymnasium" in spec["train"] else "compiled"
    episodes = spec.get("episodes", 20)
    lines = [note, ""] if note else []
    lines += [
        f"{spec['env']} ({backend}), {spec['what']}: trained on the nominal parameters, and "
        f"with `--randomize` drawing {box} uniformly per episode; each evaluated at every "
        f"point of the grid{'s' if len(boxes) > 1 else ''} below and at the nominal "
        f"parameters, {episodes} episodes per seed. A cell holds when its mean return is at "
        "least the run's own nominal return less a tenth of its size. Figure: "
        f"benchmarks/{figure(name, runs)} (held cells outlined, the nominal point marked).",
        "",
        "| grid | trained on | nominal return | cells held | fraction held |",
        "|---|---|---:|---:|---:|",
    ]
    for g, grid in enumerate(boxes):
        cells = int(np.prod([k for _, _, k in grid.values()]))
        where = ", ".join(f"{n} {lo} to {hi} ({k})" for n, (lo, hi, k) in grid.items())
        for kind in ("nominal", "randomized"):
            mapped = runs[kind]["maps"][g]
            held = int(np.asarray(mapped["held"]).sum())
            lines.append(
                f"| {where} | {kind} | {mapped['nominal_return']:.1f} | {held} of {cells} | "
                f"{mapped['held_fraction']:.2f} |"
            )
    for g, grid in enumerate(boxes):
        where = ", ".join(f"{n} {lo} to {hi}" for n, (lo, hi, _) in grid.items())
        for kind in ("nominal", "randomized"):
            lines += [
                "",
                f"Mean greedy return over seeds on {where}, trained {kind} (held cells in bold):",
                "",
            ]
            lines += grid_table(runs[kind]["maps"][g])
    return "\n".join(lines) + "\n"


SYSID = {
    "source": "pendulum-nominal",
    "real": {"m": 0.6, "l": 0.55},
    "params": "m,l",
    "finetune": ["sac", "--preset", "pendulum", "--steps", "10000", "--seeds", "4"],
}
"""System identification on Pendulum-v1: the nominal SAC run's policy records 10 episodes in a
pendulum of other mass and length (where it loses most of its return), `bellman identify` fits
both, and the run is fine-tuned (`--init-from`) on the identified model, then evaluated on the
real one."""


def return_at(run: str, point: dict[str, float]) -> dict:
    """A run's map at one point of parameters (its mean return there, and its nominal one)."""
    grid = ",".join(f"{n}={v}:{v}:1" for n, v in point.items())
    return json.loads(bellman("eval", run, "--params-grid", grid, "--json"))


def sysid() -> dict:
    source = BASE / SYSID["source"]
    real = ",".join(f"{n}={v}" for n, v in SYSID["real"].items())
    before = return_at(str(source), SYSID["real"])
    found = json.loads(
        bellman("identify", str(source), "--real", real, "--params", SYSID["params"], "--json")
    )
    tuned = BASE / "pendulum-finetuned"
    shutil.rmtree(tuned, ignore_errors=True)
    args = ["train", *SYSID["finetune"], "--env", "Pendulum-v1", "--env-params",
            found["env_params"], "--init-from", str(source.relative_to(ROOT)), "--evals", "0",
            "--quiet", "--out", str(tuned.relative_to(ROOT))]  # fmt: skip
    bellman(*args)
    after = return_at(str(tuned), SYSID["real"])
    command = "bellman " + " ".join(args)
    return {"identify": found, "before": before, "after": after, "command": command}


def sysid_markdown(data: dict, note: str) -> str:
    found, before, after = data["identify"], data["before"], data["after"]
    nominal = before["nominal_return"]
    real_before = before["return_mean"][0][0]
    real_after = after["return_mean"][0][0]
    kept = real_after >= nominal - 0.05 * abs(nominal)
    lines = [note, ""] if note else []
    lines += [
        "Pendulum-v1 (compiled). The nominal SAC run of sim2real-pendulum records "
        f"{found['episodes']} episodes ({found['transitions']:,} transitions; its greedy action "
        f"plus Gaussian noise of {found['noise']} x half the torque range) in a pendulum with "
        + ", ".join(f"{n} = {v}" for n, v in found["real"].items())
        + "; `bellman identify` fits "
        + " and ".join(found["estimate"])
        + f" from the simulator's values by Adam through gymnax's step ({found['iterations']} "
        f"steps, one-step loss {found['loss'][0]:.3g} -> {found['loss'][-1]:.3g}).",
        "",
        "| parameter | simulator | real | identified | error |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, v in found["estimate"].items():
        lines.append(
            f"| {n} | {found['start'][n]:g} | {found['true'][n]:g} | {v:.5g} | "
            f"{100 * found['relative_error'][n]:.3f}% |"
        )
    lines += [
        "",
        f"Then `{data['command']}` (fine-tuned on the identified model, starting from the "
        "nominal run's networks and optimiser state), and both runs evaluated on the real "
        "pendulum (20 episodes per seed, mean over 4 seeds):",
        "",
        "| policy | return on the real pendulum |",
        "|---|---:|",
        f"| nominal run, on its nominal pendulum (for reference) | {nominal:.1f} |",
        f"| nominal run | {real_before:.1f} |",
        f"| fine-tuned on the identified model | {real_after:.1f} |",
        "",
        f"The fine-tuned policy {'keeps' if kept else 'does not keep'} 95% of the nominal "
        f"return on the real system (target: at least {nominal - 0.05 * abs(nominal):.1f}, "
        "the nominal return less 5% of its size).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="cartpole,pendulum,sysid,halfcheetah")
    parser.add_argument("--note", default="", help="a sentence on how the runs were made")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the finished training runs in benchmarks/out/sim2real (map them again)",
    )
    parser.add_argument(
        "--redraw",
        action="store_true",
        help="rewrite the sections and figures from the saved results, without running",
    )
    args = parser.parse_args()
    BASE.mkdir(parents=True, exist_ok=True)
    saved = OUT / "sim2real-results.json"
    record = json.loads(saved.read_text()) if saved.exists() else {}
    command = "python benchmarks/sim2real_results.py"
    for name in args.only.split(","):
        if not args.redraw:
            meta = machine()
            if name == "sysid":
                result: dict = sysid()
            else:
                result = {kind: train_and_map(name, WORKLOADS[name], kind == "randomized",
                                              args.reuse)
                          for kind in ("nominal", "randomized")}  # fmt: skip
            # read again: another invocation (`--only` another workload) may have written since
            record = json.loads(saved.read_text()) if saved.exists() else {}
            record[name] = {"meta": meta, "runs": result, "note": args.note}
            saved.write_text(json.dumps(record, indent=1, default=str))
        meta, result = record[name]["meta"], record[name]["runs"]
        note = record[name].get("note", args.note)
        if name == "sysid":
            write_section("sim2real-sysid", sysid_markdown(result, note), meta, command)
        else:
            write_section(
                f"sim2real-{name}", markdown(name, WORKLOADS[name], result, note), meta, command
            )


if __name__ == "__main__":
    main()
