"""bellman against LightZero 0.2.0 (PyTorch, C++ search trees), side by side in one run: MuZero on
CartPole-v1 (RESULTS.md's section muzero-lightzero), and AlphaZero and MuZero on tic-tac-toe
(section lightzero-tictactoe).

    python benchmarks/lightzero_compare.py --group cartpole [--seeds 0,1] [--budget-s 480] \
        [--eval-every 4000]
    python benchmarks/lightzero_compare.py --group tictactoe [--seeds 0] [--budget-s 300] \
        [--eval-every 2000]

For each seed, one process of each library, one after the other, each from process start.
CartPole:
- LightZero: its own zoo config for CartPole (`benchmarks/peers/lightzero_run.py`, one
  thread, `policy.cuda=False`, CartPole-v1's 500-step cap), until its first evaluation that
  reaches the target or the wall budget;
- bellman: `bellman train muzero --env CartPole-v1` (the defaults, one seed), 100,000 env steps.
Both evaluate every `--eval-every` env steps on 10 episodes; the result is the first evaluation
whose mean return reaches 475.
Tic-tac-toe, AlphaZero then MuZero:
- LightZero: its zoo's bot-mode configs (the agent trains against its rule bot 'v0'), evaluated
  against the same bot (agent first, 20 games), for `--budget-s` seconds (AlphaZero) or twice
  that (MuZero), not stopping at the target;
- bellman: `bellman train alphazero|muzero --env tic_tac_toe` (the presets, self-play, one seed),
  evaluated against minimax (20 games, colours alternated), 64,000 moves (AlphaZero) or 480,000
  (MuZero).
LightZero evaluates every `--eval-every` moves of the agent, bellman's AlphaZero too and its
MuZero every 16,000; the result is the first evaluation without a lost game.
Reported: the wall time from process start to that evaluation (imports and compiling included),
the env steps it took, and the env steps (tic-tac-toe: moves the agent searched) per second of the
whole run (acting and learning). The LightZero venv is made as the peer script's docstring says.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from run import HERE, OUT, ROOT, machine, write_section

PEER = HERE / ".venvs" / "lightzero" / "bin" / "python"
TARGET = 475.0
Keep = Callable[[dict], None]
# tic-tac-toe: bellman's moves of self-play per algorithm, LightZero's budget as a multiple of
# --budget-s
TTT_STEPS = {"alphazero": 64_000, "muzero": 480_000}
TTT_BUDGET = {"alphazero": 1, "muzero": 2}
# bellman's MuZero needs hundreds of thousands of moves: evaluated every 16,000, not every
# --eval-every (its 20 games of 64-simulation searches would double the run's time)
TTT_EVALS = {"alphazero": None, "muzero": 30}


def lightzero(cmd: list[str], seed: int) -> dict:
    """One LightZero process (`cmd` runs benchmarks/peers/lightzero_run.py), from its start."""
    cmd = [str(PEER), str(HERE / "peers" / "lightzero_run.py"), *cmd, "--seed", str(seed)]
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


def bellman(train: list[str], seed: int, target: float, cache: Path) -> dict:
    """One `bellman train` process (`train`: the algorithm, env and budget), from its start."""
    out = Path(tempfile.mkdtemp(prefix="bench-")) / "run"
    cmd = [sys.executable, "-m", "bellman", "train", *train, "--seed", str(seed)]
    cmd += ["--out", str(out), "--quiet"]
    start = time.perf_counter()
    env = {**os.environ, "BELLMAN_CACHE_DIR": str(cache)}
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env=env)
    process = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # (the evaluation after the last update is a record of its own, at the end of the run)
    evals = [{"time_s": summary["wall_s"], **r} for r in records if "eval_return" in r]
    startup = process - summary["wall_s"]  # the interpreter and imports, before train() starts
    first = next((r for r in evals if r["eval_return"][0] >= target), None)
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


def cartpole(seed: int, args: argparse.Namespace, cache: Path, keep: Keep) -> None:
    peer = ["--algo", "muzero", "--env", "cartpole", "--max-env-steps", "100000"]
    peer += ["--target", str(TARGET), "--eval-every", str(args.eval_every)]
    peer += ["--eval-episodes", "10", "--max-wall-s", str(args.budget_s)]
    steps = 100_000
    ours = ["muzero", "--env", "CartPole-v1", "--steps", str(steps)]
    ours += ["--evals", str(steps // args.eval_every), "--eval-episodes", "10"]
    keep(lightzero(peer, seed))
    keep(bellman(ours, seed, TARGET, cache))


def tictactoe(seed: int, args: argparse.Namespace, cache: Path, keep: Keep) -> None:
    for algo, steps in TTT_STEPS.items():
        budget = args.budget_s * TTT_BUDGET[algo]
        peer = ["--algo", algo, "--env", "tictactoe", "--max-env-steps", str(10**9)]
        peer += ["--target", "0", "--target-on", "worst", "--no-stop", "--eval-bot", "v0"]
        peer += ["--eval-episodes", "20"]
        peer += ["--eval-every", str(args.eval_every), "--max-wall-s", str(budget)]
        ours = [algo, "--env", "tic_tac_toe", "--steps", str(steps)]
        evals = TTT_EVALS[algo] or steps // args.eval_every
        ours += ["--evals", str(evals), "--eval-episodes", "20"]
        ours += ["--eval-opponent", "minimax"]
        theirs = lightzero(peer, seed)
        # the same, without the time of its evaluations (20 games of searches, one env each)
        theirs["steps_per_s"] = theirs["detail"]["steps_per_s_excl_eval"]
        keep({**theirs, "algo": algo})
        keep({**bellman(ours, seed, 0.0, cache), "algo": algo})


GROUPS = {
    "cartpole": ("muzero-lightzero", cartpole),
    "tictactoe": ("lightzero-tictactoe", tictactoe),
}


def fmt(x: float | None, spec: str = ".0f") -> str:
    return "not reached" if x is None else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=sorted(GROUPS), default="cartpole")
    parser.add_argument("--seeds", default=None, help="default: 0,1 (cartpole), 0 (tictactoe)")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="default: 480 (cartpole), 300 (tictactoe)"
    )
    parser.add_argument(
        "--eval-every", type=int, default=None, help="default: 4000 (cartpole), 2000 (tictactoe)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only write the section from the saved runs"
    )
    args = parser.parse_args()
    cart = args.group == "cartpole"
    args.seeds = args.seeds or ("0,1" if cart else "0")
    args.budget_s = args.budget_s or (480 if cart else 300)
    args.eval_every = args.eval_every or (4000 if cart else 2000)
    section, group = GROUPS[args.group]
    saved = OUT / f"{section}.json"
    if args.report:
        data = json.loads(saved.read_text())
        saved_args = data.get("args", {"group": "cartpole", "seeds": "0", "budget_s": 420})
        write(data["meta"], data["runs"], argparse.Namespace(**{**vars(args), **saved_args}))
        return
    if not PEER.exists():
        raise SystemExit(f"make the LightZero venv first (see {HERE / 'peers/lightzero_run.py'})")
    meta = machine()
    cache = Path(tempfile.mkdtemp(prefix="bellman-cache-"))
    runs: list[dict] = []
    OUT.mkdir(exist_ok=True)

    def keep(run: dict) -> None:  # saved after every run: a long comparison keeps what it measured
        runs.append(run)
        saved.write_text(json.dumps({"meta": meta, "runs": runs, "args": vars(args)}, indent=1))

    for seed in (int(s) for s in args.seeds.split(",")):
        print(f"{args.group}, seed {seed}: LightZero, bellman", flush=True)
        group(seed, args, cache, keep)
    write(meta, runs, args)


def write(meta: dict, runs: list[dict], args: argparse.Namespace) -> None:
    command = f"python benchmarks/lightzero_compare.py --group {args.group} --seeds {args.seeds}"
    command += f" --budget-s {args.budget_s:.0f} --eval-every {args.eval_every}"
    body = (write_cartpole if args.group == "cartpole" else write_tictactoe)(runs, args)
    write_section(GROUPS[args.group][0], body, meta, command)
    print(body)


def write_cartpole(runs: list[dict], args: argparse.Namespace) -> str:
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
        *table(runs, "env steps", "final evaluation", ".1f"),
        "",
        *ratios(runs, "env steps"),
    ]
    return "\n".join(lines)


def write_tictactoe(runs: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "Tic-tac-toe, target: an evaluation without a lost game. LightZero: "
        f"its zoo's bot-mode configs, evaluated every {args.eval_every:,} moves of the agent "
        "(AlphaZero: 8 envs, 25 simulations of its C++ PUCT tree, 50 updates of 256 per collect "
        "of 8 games; MuZero: the same counts with its C++ MuZero tree), training against its rule "
        "bot 'v0' and evaluated in 20 games against it (the agent moves first; the bot "
        "completes its own two-in-a-row, else blocks the agent's, else plays at random; its "
        "exact alpha-beta player is deterministic, so that every game against it is the same "
        "game), one thread, CPU, for "
        f"{args.budget_s * TTT_BUDGET['alphazero']:.0f} s (AlphaZero) and "
        f"{args.budget_s * TTT_BUDGET['muzero']:.0f} s (MuZero); its env step is the agent's move "
        "with the bot's reply. bellman: `bellman train alphazero|muzero --env tic_tac_toe` (the "
        "presets: 64 games of self-play at a time, Gumbel search of 16 simulations, 64 when "
        f"evaluated), {TTT_STEPS['alphazero']:,} moves "
        "(AlphaZero) or "
        f"{TTT_STEPS['muzero']:,} (MuZero), evaluated in 20 games against minimax (colours "
        "alternated; minimax picks at random among its best moves, and no agent can beat "
        f"it), a stricter test than LightZero's, about every {args.eval_every:,} moves (AlphaZero) "
        "or "
        f"{TTT_STEPS['muzero'] // TTT_EVALS['muzero']:,} (MuZero). Every move of bellman's "
        "self-play is a move the agent searched; moves/s counts those. Times from process "
        "start (imports and compiling included); moves/s over the whole run, bellman's "
        "evaluations included, LightZero's left out.",
        "",
    ]
    for algo in TTT_STEPS:
        mine = [r for r in runs if r["algo"] == algo]
        lines += [f"{'AlphaZero' if algo == 'alphazero' else 'MuZero'}:", ""]
        lines += [*table(mine, "moves", "final mean outcome", ".2f"), ""]
        lines += [*ratios(mine, "moves"), ""]
    return "\n".join(lines).rstrip()


def table(runs: list[dict], unit: str, final: str, spec: str) -> list[str]:
    lines = [
        f"| library | seed | to the target, s | {unit} to the target | {unit} | {unit}/s | "
        f"{final} | whole process s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['library']} | {r['seed']} | {fmt(r['to_target_s'])} | "
            f"{fmt(r['steps_to_target'], ',')} | {r['env_steps']:,} | {r['steps_per_s']:,.1f} | "
            f"{format(r['final_return'], spec)} | {r['process_s']:.0f} |"
        )
    return lines


def ratios(runs: list[dict], unit: str) -> list[str]:
    pairs = list(zip(runs[::2], runs[1::2], strict=True))
    speed = [b["steps_per_s"] / a["steps_per_s"] for a, b in pairs]
    lines = [
        f"- {unit} per second, bellman / LightZero: "
        + ", ".join(f"seed {a['seed']}: {x:.0f}x" for (a, _), x in zip(pairs, speed, strict=True))
        + "."
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
        elif a["to_target_s"] is not None:
            lines.append(
                f"- seed {a['seed']}: LightZero reached the target in {a['to_target_s']:.0f} s; "
                "bellman did not."
            )
        else:
            lines.append(f"- seed {a['seed']}: neither reached the target.")
    return lines


if __name__ == "__main__":
    main()
