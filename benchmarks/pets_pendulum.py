"""PETS and MBPO against SAC on Pendulum-v1, sample efficiency measured in one run, and PETS
against mbrl-lib's (PyTorch) in wall time; writes RESULTS.md's sections pets-pendulum and
pets-mbrl-lib.

    python benchmarks/pets_pendulum.py [--seeds 4] [--pets-steps 2000] [--mbpo-steps 5000]
        [--sac-steps 20000] [--every 400] [--episodes 2] [--peer-steps 1200]
        [--final-episodes 10] [--skip-peer | --only-peer | --evaluate-only]

Three commands, one after the other on the same machine: `bellman train pets`, `bellman train
mbpo` and `bellman train sac --env Pendulum-v1` (each its defaults, SAC its pendulum preset),
each with `--seeds` seeds in one program and an evaluation of `--episodes` fresh episodes every
`--every` env steps. For each seed, the env steps until its evaluation return first reaches
-200; the table gives their mean over the seeds. After training, `bellman eval RUN --episodes
N` (`--final-episodes`, 10) measures each seed's final controller on N fresh episodes: the
final return. The targets (issue 19): PETS's and MBPO's final return >= -200 (mean over the
seeds) within 5,000 env steps, and PETS needing at most a third of SAC's env steps to reach -200.
`--evaluate-only` measures the final returns again from the run directories of the last run
(`benchmarks/out/pets-pendulum.json`) and rewrites the section.

Then one seed of bellman's PETS and one of mbrl-lib's (`peers/mbrl_pets.py`, in its own venv:
torch==2.13.0 first, then mbrl==0.2.0), the same network, ensemble and CEM sizes, each for
`--peer-steps` env steps without evaluations: the wall time from the start of training
(imports excluded, compiling included) to the end of the first episode with a return >= -200.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from run import OUT, ROOT, machine, peer_python, write_section

THRESHOLD = -200.0


def train(algo: str, steps: int, seeds: int, every: int, episodes: int) -> dict:
    out = OUT / f"pets-pendulum-{algo}"
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "bellman", "train", algo, "--env", "Pendulum-v1"]
    cmd += ["--seeds", str(seeds), "--steps", str(steps), "--evals", str(steps // every)]
    cmd += ["--eval-episodes", str(episodes), "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval_return"]) for r in evals if "eval_return" in r]
    reached = []
    for seed in range(seeds):
        first = next((step for step, ret in curve if ret[seed] >= THRESHOLD), None)
        reached.append(first)
    return {
        "algo": algo,
        "command": " ".join(["bellman", *cmd[3:-3]]),
        "steps": steps,
        "wall_s": wall,
        "compile_s": summary["compile_s"],
        "train_s": summary["train_s"],
        "last_eval": summary["final_return_per_seed"],
        "reached": reached,
        "curve": curve,
    }


def final_evaluation(run: dict, episodes: int) -> dict:
    """`run` with `final`: each seed's mean return over `episodes` fresh episodes of its final
    controller (`bellman eval`), and the wall time that took."""
    out = OUT / f"pets-pendulum-{run['algo']}"
    cmd = [sys.executable, "-m", "bellman", "eval", str(out), "--episodes", str(episodes)]
    start = time.perf_counter()
    done = subprocess.run([*cmd, "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout)
    return {
        **run,
        "final": result["return_per_seed"],
        "final_episodes": episodes,
        "final_eval_s": time.perf_counter() - start,
    }


def mean_reached(run: dict) -> float | None:
    """The mean over seeds of the steps to -200, or None if a seed never got there."""
    if any(r is None for r in run["reached"]):
        return None
    return sum(run["reached"]) / len(run["reached"])


def first_time(episodes: list[dict]) -> dict | None:
    return next((e for e in episodes if e["return"] >= THRESHOLD), None)


def bellman_peer_run(steps: int) -> dict:
    """One seed of bellman's PETS for `steps` steps, an episode per log record."""
    out = OUT / "pets-pendulum-peer-bellman"
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "bellman", "train", "pets", "--env", "Pendulum-v1"]
    cmd += ["--steps", str(steps), "--log-every", "200", "--evals", "0", "--eval-episodes", "1"]
    cmd += ["--out", str(out), "--quiet"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    episodes = [
        {"env_step": r["step"], "return": r["episode_return"][0], "wall_s": r["time_s"]}
        for r in records
        if r.get("episode_return", [None])[0] is not None
    ]
    return {"name": "bellman", "episodes": episodes}


def mbrl_peer_run(steps: int) -> dict:
    python = peer_python("mbrl")
    cmd = [python, str(ROOT / "benchmarks" / "peers" / "mbrl_pets.py"), "--steps", str(steps)]
    done = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return {"name": "mbrl-lib", **json.loads(done.stdout.strip().splitlines()[-1])}


def peer_markdown(runs: list[dict], steps: int) -> str:
    lines = [
        f"One seed each, {steps:,} env steps (one random episode, then PETS), no evaluation: "
        "bellman's defaults (an ensemble of 5 networks of 3 x 64, CEM 200 x 4 iterations, "
        "horizon 20, 5 particles) and mbrl-lib 0.2.0's PETS with the same sizes (its training "
        "loop: the model retrained every 50 steps for up to 25 epochs; torch 2.13.0 on the "
        "CPU). Wall time from the start of training, imports excluded, compiling included.",
        "",
        "| library | episode returns | first return >= -200 at | wall s to it | wall s, all |",
        "|---|---|---:|---:|---:|",
    ]
    for run in runs:
        returns = ", ".join(f"{e['return']:.0f}" for e in run["episodes"])
        hit = first_time(run["episodes"])
        at = "-" if hit is None else f"{hit['env_step']:,} steps"
        to = "-" if hit is None else f"{hit['wall_s']:.1f}"
        total = run["episodes"][-1]["wall_s"] if run["episodes"] else float("nan")
        lines.append(f"| {run['name']} | {returns} | {at} | {to} | {total:.1f} |")
    ours, theirs = (first_time(r["episodes"]) for r in runs)
    if ours is not None and theirs is not None:
        ratio = theirs["wall_s"] / ours["wall_s"]
        met = "met" if ratio >= 10 else "missed"
        lines += ["", f"- mbrl-lib took {ratio:.1f}x bellman's wall time to -200; target 10x: "
                  f"**{met}**."]  # fmt: skip
    else:
        lines += ["", "- One of them never reached -200 in the run: no ratio."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--pets-steps", type=int, default=2000)
    parser.add_argument("--mbpo-steps", type=int, default=5000)
    parser.add_argument("--sac-steps", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=400)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--peer-steps", type=int, default=1200)
    parser.add_argument("--note", default="", help="a sentence on how the run was made")
    parser.add_argument("--final-episodes", type=int, default=10)
    parser.add_argument("--evaluate-only", action="store_true", help="final returns again")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--only-peer", action="store_true", help="the mbrl-lib comparison alone")
    args = parser.parse_args()
    meta = machine()
    if args.only_peer:
        return peer(args.peer_steps, meta)
    saved = OUT / "pets-pendulum.json"
    if args.evaluate_only:
        last = json.loads(saved.read_text())
        runs, meta = last["runs"], {**last["meta"], "evaluated": meta["date"]}
        every, episodes = last["every"], last["episodes"]
    else:
        every, episodes = args.every, args.episodes
        runs = [
            train("pets", args.pets_steps, args.seeds, every, episodes),
            train("mbpo", args.mbpo_steps, args.seeds, every, episodes),
            train("sac", args.sac_steps, args.seeds, every, episodes),
        ]
    runs = [final_evaluation(run, args.final_episodes) for run in runs]
    record = {"meta": meta, "every": every, "episodes": episodes, "runs": runs}
    saved.write_text(json.dumps(record, indent=1))
    pets, mbpo, sac = runs
    seeds = len(pets["final"])
    lines = [args.note, ""] if args.note else []
    lines += [
        f"{seeds} seeds of each in one command; an evaluation of {episodes} fresh "
        f"episodes every {every} env steps. Steps to -200: for each seed, the env steps "
        "at its first evaluation with a mean return >= -200. Final return: each seed's final "
        f"controller on {args.final_episodes} fresh episodes (`bellman eval RUN --episodes "
        f"{args.final_episodes}`) after training; the last evaluation during training, on "
        f"{episodes} episodes, in brackets.",
        "",
        "| algorithm | command | final return per seed (last evaluation) | steps to -200 per "
        "seed | mean | wall s (compile s) |",
        "|---|---|---|---|---:|---:|",
    ]
    for run in runs:
        final = ", ".join(
            f"{x:.1f} ({y:.0f})" for x, y in zip(run["final"], run["last_eval"], strict=True)
        )
        reached = ", ".join("never" if r is None else f"{r:,}" for r in run["reached"])
        mean = mean_reached(run)
        shown = "not reached by every seed" if mean is None else f"{mean:,.0f}"
        lines.append(
            f"| {run['algo']} | `{run['command']}` | {final} | {reached} | {shown} "
            f"| {run['wall_s']:.0f} ({run['compile_s']:.0f}) |"
        )
    lines.append("")
    for run, limit in ((pets, 5000), (mbpo, 5000)):
        final = sum(run["final"]) / len(run["final"])
        met = final >= THRESHOLD and run["steps"] <= limit
        lines.append(
            f"- {run['algo'].upper()}'s final return, mean over seeds: {final:.1f} after "
            f"{run['steps']:,} env steps; target >= -200 within {limit:,}: "
            f"**{'met' if met else 'missed'}**."
        )
    pets_mean, sac_mean = mean_reached(pets), mean_reached(sac)
    ratio = None if pets_mean is None or sac_mean is None else sac_mean / pets_mean
    met_ratio = ratio is not None and ratio >= 3.0
    lines += [
        f"- SAC needed {'-' if ratio is None else f'{ratio:.1f}x'} PETS's env steps to reach "
        f"-200; target at least 3x: **{'met' if met_ratio else 'missed'}**.",
        "- Wall time per env step (training, compile excluded, all seeds together): "
        + ", ".join(f"{r['algo']} {1000 * r['train_s'] / r['steps']:.1f} ms" for r in runs)
        + ".",
    ]
    body = "\n".join(lines)
    if args.evaluate_only:
        body += (
            f"\n- The final returns were measured at {meta['evaluated']} by `python "
            "benchmarks/pets_pendulum.py --evaluate-only` on the run directories above."
        )
    write_section("pets-pendulum", body, meta, "python benchmarks/pets_pendulum.py")
    print(body)
    if not (args.skip_peer or args.evaluate_only):
        peer(args.peer_steps, meta)


def peer(steps: int, meta: dict) -> None:
    peers = [bellman_peer_run(steps), mbrl_peer_run(steps)]
    (OUT / "pets-mbrl-lib.json").write_text(json.dumps({"meta": meta, "runs": peers}))
    text = peer_markdown(peers, steps)
    write_section("pets-mbrl-lib", text, meta, "python benchmarks/pets_pendulum.py --only-peer")
    print(text)


if __name__ == "__main__":
    main()
