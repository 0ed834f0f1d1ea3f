"""The Recurrent Attention Model against random glimpses on TranslatedDigits-v0.

    python benchmarks/ram_results.py [--steps N] [--seeds S] [--note "..."] [--redraw]

Two runs of `bellman train ram`, the same classifier trained the same way: `--locations learned`
(the location policy trained by REINFORCE) and `--locations random` (every glimpse at a uniformly
random place); each evaluated on `EPISODES` held-out digits per seed at random places. Writes the
section ram-digits of benchmarks/RESULTS.md and the glimpse figure of the learned run
(benchmarks/ram_glimpses.png); the runs stay in benchmarks/out/ram.
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
BASE = OUT / "ram"
EPISODES = 1000
"""Test digits per seed in the final evaluation."""
FIGURE = HERE / "ram_glimpses.png"


def train(locations: str, steps: int, seeds: int) -> dict:
    out = BASE / locations
    shutil.rmtree(out, ignore_errors=True)
    args = ["train", "ram", "--env", "TranslatedDigits-v0", "--locations", locations]
    args += ["--steps", str(steps), "--seeds", str(seeds), "--eval-episodes", str(EPISODES)]
    args += ["--quiet", "--out", str(out.relative_to(ROOT))]
    result = subprocess.run([*BELLMAN, *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bellman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads((out / "summary.json").read_text())


def interval(values: list[float]) -> str:
    """Mean and a 95% bootstrap interval of the seeds' accuracies, in points."""
    x = 100 * np.asarray(values)
    rng = np.random.default_rng(0)
    means = rng.choice(x, (10_000, len(x))).mean(axis=1)
    return f"{x.mean():.1f} [{np.percentile(means, 2.5):.1f}, {np.percentile(means, 97.5):.1f}]"


def markdown(runs: dict, steps: int, seeds: int, note: str) -> str:
    learned, random = runs["learned"], runs["random"]
    gap = 100 * (learned["final_return_mean"] - random["final_return_mean"])
    lines = [note, ""] if note else []
    lines += [
        f"TranslatedDigits-v0 (scikit-learn's 8 x 8 digits upscaled to 24 x 24 at random places "
        f"in a 60 x 60 canvas; 1,437 training digits x 10 places, 360 test digits), "
        f"`bellman train ram` with its defaults (6 glimpses of 2 scales, 12 and 24 pixels, "
        f"averaged to 12 x 12; Adam 3e-4, batch 128), {steps:,} gradient steps, {seeds} seeds; "
        f"test accuracy on {EPISODES:,} test digits at random places per seed, mean "
        f"[95% bootstrap interval over seeds], in percent.",
        "",
        "| glimpse locations | test accuracy | per seed | train s |",
        "|---|---:|---|---:|",
    ]
    for name, label in (("learned", "learned (REINFORCE)"), ("random", "uniformly random")):
        r = runs[name]
        per_seed = ", ".join(f"{100 * v:.1f}" for v in r["final_return_per_seed"])
        lines.append(
            f"| {label} | {interval(r['final_return_per_seed'])} | {per_seed} "
            f"| {r['train_s']:.0f} |"
        )
    lines += [
        "",
        f"- The learned glimpses are {gap:.1f} points above random ones (target: at least 5).",
        f"- Figure: benchmarks/{FIGURE.name} (the learned run's seed 0 on eight test digits).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--note", default="", help="a sentence on how the runs were made")
    parser.add_argument("--redraw", action="store_true", help="rewrite from the saved results")
    args = parser.parse_args()
    BASE.mkdir(parents=True, exist_ok=True)
    saved = OUT / "ram-results.json"
    if args.redraw:
        record = json.loads(saved.read_text())
    else:
        meta = machine()
        runs = {kind: train(kind, args.steps, args.seeds) for kind in ("learned", "random")}
        record = {"meta": meta, "runs": runs, "steps": args.steps, "seeds": args.seeds}
        record["note"] = args.note
        saved.write_text(json.dumps(record, indent=1, default=str))
        shutil.copyfile(BASE / "learned" / "glimpses.png", FIGURE)
    body = markdown(record["runs"], record["steps"], record["seeds"], record["note"])
    write_section("ram-digits", body, record["meta"], "python benchmarks/ram_results.py")


if __name__ == "__main__":
    main()
