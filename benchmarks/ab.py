"""Before and after: two checkouts of bellman on the W1/W2 runs, interleaved, in one go.

    python benchmarks/ab.py BEFORE_CHECKOUT AFTER_CHECKOUT [--rounds 3]
                            [--work ppo-1,ppo-8,dqn-1,dqn-8] [--out ab.json]

Each checkout runs with its own `.venv` (`make install` there). For every round and workload the
two checkouts alternate (which goes first swaps each round), each `bellman train` twice: with an
empty program cache (cold) and again with the cache it filled (warm). Prints one JSON record per
run and a summary table of compile + train seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from run import DQN_W2_FLAGS

WORK = {
    "ppo-1": ("ppo", 500_000, ["--seeds", "1"]),
    "ppo-8": ("ppo", 500_000, ["--seeds", "8"]),
    "dqn-1": ("dqn", 100_000, ["--seeds", "1", *DQN_W2_FLAGS]),
    "dqn-8": ("dqn", 100_000, ["--seeds", "8", *DQN_W2_FLAGS]),
}


def train(checkout: Path, algo: str, steps: int, args: list[str], cache: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="ab-")) / "run"
    cmd = [str(checkout / ".venv" / "bin" / "python"), "-m", "bellman", "train", algo]
    cmd += ["--env", "CartPole-v1", "--steps", str(steps), "--evals", "0", "--quiet"]
    cmd += ["--out", str(out), *args]
    start = time.perf_counter()
    env = {**os.environ, "BELLMAN_CACHE_DIR": str(cache)}
    subprocess.run(cmd, cwd=checkout, check=True, capture_output=True, env=env)
    process_s = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    shutil.rmtree(out.parent)
    return {
        "compile_s": summary["compile_s"],
        "train_s": summary["train_s"],
        "process_s": process_s,
        "final": summary["final_return_mean"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default="ppo-1,ppo-8,dqn-1,dqn-8")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    records = []
    for i in range(args.rounds):
        for name in args.work.split(","):
            algo, steps, flags = WORK[name]
            order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
            for version in order:
                cache = Path(tempfile.mkdtemp(prefix="ab-cache-"))
                cold = train(checkouts[version], algo, steps, flags, cache)
                warm = train(checkouts[version], algo, steps, flags, cache)
                shutil.rmtree(cache)
                record = {"round": i, "work": name, "version": version, "cold": cold, "warm": warm}
                print(json.dumps(record), flush=True)
                records.append(record)
    if args.out:
        args.out.write_text(json.dumps(records, indent=1))
    print("\n| run | version | cold: compile + train s | warm: compile + train s | final return |")
    print("|---|---|---|---|---|")
    for name in args.work.split(","):
        for version in ("before", "after"):
            mine = [r for r in records if r["work"] == name and r["version"] == version]
            total = lambda r, kind: r[kind]["compile_s"] + r[kind]["train_s"]
            cold = ", ".join(f"{total(r, 'cold'):.2f}" for r in mine)
            warm = ", ".join(f"{total(r, 'warm'):.2f}" for r in mine)
            print(f"| {name} | {version} | {cold} | {warm} | {mine[0]['cold']['final']:g} |")


if __name__ == "__main__":
    main()
