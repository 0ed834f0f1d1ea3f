"""`bellman compare` on the policy-gradient results; writes RESULTS.md's pg-compare.

    python benchmarks/pg_compare.py

Trains, with `bellman train`, 8 seeds each on compiled CartPole-v1: REINFORCE (1,000,000 steps),
A2C (500,000) and PPO with the KL-penalty objective (500,000), the pg-results commands; and the
REINFORCE ablation's two weaker variants (the whole episode's return, the reward-to-go, without a
baseline; 1,000,000 steps). Then `bellman compare` on the five run directories: mean, median, IQM
with 95% stratified bootstrap intervals, the optimality gap (CartPole's score range), P(X > Y)
and the performance profiles (benchmarks/pg_compare_profile.png). The final returns go to
benchmarks/pg_scores.json, which tests/test_pg_compare.py checks bellman's statistics on against
rliable's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from run import HERE, ROOT, machine, write_section

BELLMAN = [sys.executable, "-m", "bellman"]
CARTPOLE = ["--env", "CartPole-v1", "--seeds", "8"]
METHODS = {
    "REINFORCE": ["reinforce", *CARTPOLE, "--steps", "1000000"],
    "A2C": ["a2c", *CARTPOLE, "--steps", "500000"],
    "PPO-KL": ["ppo", *CARTPOLE, "--objective", "kl", "--steps", "500000"],
    "REINFORCE, reward-to-go, no baseline": [
        "reinforce", *CARTPOLE, "--steps", "1000000", "--baseline", "none",
    ],
    "REINFORCE, whole-episode return": [
        "reinforce", *CARTPOLE, "--steps", "1000000", "--baseline", "none", "--no-reward-to-go",
    ],
}  # fmt: skip
SCORES = HERE / "pg_scores.json"
PROFILE = HERE / "pg_compare_profile.png"


def main() -> None:
    meta = machine()
    work = Path(tempfile.mkdtemp(prefix="pg-compare-"))
    dirs = []
    for label, args in METHODS.items():
        out = work / label.replace(" ", "_").replace(",", "")
        print(f"bellman train {' '.join(args)}", flush=True)
        subprocess.run(
            [*BELLMAN, "train", *args, "--quiet", "--out", str(out)], cwd=ROOT, check=True
        )
        dirs.append(str(out))
    compare = [*BELLMAN, "compare", *dirs, "--labels", *METHODS, "--out", str(work / "compare")]
    result = subprocess.run(
        [*compare, "--json"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    compared = json.loads(result.stdout)
    report = subprocess.run(
        compare,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    shutil.copy(work / "compare" / "performance_profile.png", PROFILE)
    scores = {m: [row[0] for row in v["scores"]] for m, v in compared["methods"].items()}
    SCORES.write_text(json.dumps({"env": "CartPole-v1", "scores": scores}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    table = "\n".join(line for line in report.splitlines() if not line.startswith("wrote "))
    commands = "\n".join(f"- {m}: `bellman train {' '.join(a)}`" for m, a in METHODS.items())
    body = (
        "Five methods on compiled CartPole-v1, 8 seeds each (one `bellman train` command each), "
        "compared with `bellman compare RUN_DIR... --labels ...` on the final greedy returns "
        "(20 episodes per seed):\n\n"
        f"```\n{table}\n```\n\n"
        f"{commands}\n\n"
        "Performance profiles (the fraction of runs whose final return exceeds tau, with 95% "
        "bootstrap bands): `pg_compare_profile.png`. The scores are in `pg_scores.json`; "
        "`tests/test_pg_compare.py` checks that bellman's IQM and intervals on them equal "
        "rliable's."
    )
    write_section("pg-compare", body, meta, "python benchmarks/pg_compare.py")
    print(body)


if __name__ == "__main__":
    main()
