"""AlphaZero on the board games against the reference players; writes RESULTS.md's sections
alphazero-tictactoe, alphazero-connect-four and alphazero-go-9x9.

    python benchmarks/alphazero_games.py --game tic_tac_toe [--seeds 2] [--steps 320000]
    python benchmarks/alphazero_games.py --game connect_four [--steps N]
    python benchmarks/alphazero_games.py --game go_9x9 --seeds 1 [--steps N]
    ... [--train-flag gradient-steps=2] [--also-simulations 800]

One `bellman train alphazero --env GAME` command (the game's preset), timed from process start
to exit (compiling included), then `bellman arena RUN OPPONENT --games 200 --seed-index i` for
every seed: 100 games as first player and 100 as second. `--train-flag` sets the training run's
flags over the preset's; `--also-simulations N` plays the first opponent again with the agent
searching N simulations per move (a second table, not the target's setting). The targets (issue 18):
tic-tac-toe, a run of at most 10 minutes after which the agent never loses against exact
minimax; Connect Four, a run of at most 60 minutes that wins at least 90% against pure MCTS
with 400 random-rollout simulations and 80% against depth-4 alpha-beta; Go 9x9, a run of at
most 60 minutes that wins at least 99% against random, with its score against pure MCTS with 128
simulations and the Elo ladder of its checkpoints.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from run import OUT, ROOT, machine, write_section

OPPONENTS = {
    "tic_tac_toe": ["minimax", "random"],
    "connect_four": ["mcts:400", "alphabeta:4"],
    "go_9x9": ["random", "mcts:128"],
}
TARGETS = {
    "tic_tac_toe": (600, "no loss against minimax in 100 games as first and 100 as second"),
    "connect_four": (3600, ">= 90% wins against mcts:400 and >= 80% against alphabeta:4"),
    "go_9x9": (3600, ">= 99% wins against random (the win rate against mcts:128 reported)"),
}
SECTIONS = {
    "tic_tac_toe": "alphazero-tictactoe",
    "connect_four": "alphazero-connect-four",
    "go_9x9": "alphazero-go-9x9",
}


def arena(
    run_dir: Path, opponent: str, seed_index: int, games: int, simulations: int | None = None
) -> dict:
    cmd = [sys.executable, "-m", "bellman", "arena", str(run_dir), opponent, "--games"]
    cmd += [str(games), "--seed-index", str(seed_index), "--json"]
    if simulations is not None:
        cmd += ["--simulations", str(simulations)]
    done = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def ladder(run_dir: Path, games: int) -> dict:
    cmd = [sys.executable, "-m", "bellman", "arena", str(run_dir), "--ladder", "--games"]
    cmd += [str(games), "--json"]
    done = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def snapshot_curve(run_dir: Path, opponent: str, games: int) -> dict:
    cmd = [sys.executable, "-m", "bellman", "arena", str(run_dir), opponent, "--snapshots"]
    cmd += ["--games", str(games), "--json"]
    done = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


ARENA_HEADER = (
    "| seed | opponent | as first: W / D / L | as second: W / D / L | score [95%] |",
    "|---:|---|---:|---:|---:|",
)


def arena_row(seed: int, opponent: str, r: dict) -> str:
    """One row of the arena table: wins / draws / losses as first and as second, the score."""
    first, second = r["as_first"], r["as_second"]
    lo, hi = r["score_interval"]
    return (
        f"| {seed} | {opponent} | {first['wins']} / {first['draws']} / {first['losses']} | "
        f"{second['wins']} / {second['draws']} / {second['losses']} | "
        f"{r['score']:.3f} [{lo:.3f}, {hi:.3f}] |"
    )


def met(game: str, results: dict[str, dict]) -> bool:
    if game == "tic_tac_toe":
        return results["minimax"]["losses"] == 0
    wins = lambda name: results[name]["wins"] / results[name]["games"]
    if game == "go_9x9":
        return wins("random") >= 0.99
    return wins("mcts:400") >= 0.9 and wins("alphabeta:4") >= 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", choices=sorted(OPPONENTS), default="tic_tac_toe")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=320_000)
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--eval-games", type=int, default=100)
    parser.add_argument(
        "--opponent-games",
        action="append",
        default=[],
        metavar="OPPONENT=N",
        help="games against one opponent instead of --games (e.g. mcts:128=50 on go_9x9)",
    )
    parser.add_argument("--checkpoints", type=int, default=10, help="snapshots of the run")
    parser.add_argument("--ladder-games", type=int, default=40)
    parser.add_argument(
        "--curve-games",
        type=int,
        default=0,
        help="games of seed 0's network at every checkpoint against each opponent (0: none)",
    )
    parser.add_argument(
        "--train-flag",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="a setting of the training run over the preset's (e.g. --train-flag gradient-steps=2)",
    )
    parser.add_argument(
        "--also-simulations",
        type=int,
        default=0,
        help="play the first opponent again with this many simulations for the agent (0: not)",
    )
    parser.add_argument("--note", default="", help="a sentence on how the run was made")
    args = parser.parse_args()
    meta = machine()
    out = OUT / f"alphazero-{args.game}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "bellman", "train", "alphazero", "--env", args.game]
    cmd += ["--seeds", str(args.seeds), "--steps", str(args.steps), "--evals", str(args.evals)]
    cmd += ["--eval-episodes", str(args.eval_games), "--out", str(out), "--quiet"]
    cmd += ["--checkpoint-every", str(max(args.steps // args.checkpoints, 1))]
    flags = []
    for item in args.train_flag:
        flag, _, value = item.partition("=")
        flags += [f"--{flag}", value]
    cmd += flags
    games = {name: args.games for name in OPPONENTS[args.game]}
    for item in args.opponent_games:
        name, _, number = item.rpartition("=")
        games[name] = int(number)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())["config"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval_return"]) for r in records if "eval_return" in r]
    results = [
        {name: arena(out, name, i, games[name]) for name in OPPONENTS[args.game]}
        for i in range(args.seeds)
    ]
    first_opponent = OPPONENTS[args.game][0]
    more = [
        arena(out, first_opponent, i, games[first_opponent], args.also_simulations)
        for i in range(args.seeds if args.also_simulations else 0)
    ]
    elo = ladder(out, args.ladder_games) if args.game == "go_9x9" else None
    curves = {
        name: snapshot_curve(out, name, args.curve_games)["points"]
        for name in (OPPONENTS[args.game] if args.curve_games else [])
    }
    budget, target = TARGETS[args.game]
    passed = all(met(args.game, r) for r in results) and wall <= budget
    (OUT / f"alphazero-{args.game}.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "wall_s": wall,
                "summary": summary,
                "curve": curve,
                "arena": results,
                "arena_more_simulations": more,
                "ladder": elo,
                "snapshot_curves": curves,
            },
            indent=1,
        )
    )
    lines = [
        f"`bellman train alphazero --env {args.game} --seeds {args.seeds} --steps {args.steps}"
        + "".join(f" {x}" for x in flags)
        + f"` (the {args.game} preset{' and those flags' if flags else ''}: "
        f"{config['num_envs']} games per seed, "
        f"{config['num_simulations']} simulations of {config['mcts']} search per move in "
        f"self-play, {config['eval_simulations']} when evaluated; a tower of {config['blocks']} "
        f"residual blocks of {config['channels']} channels), then `bellman arena RUN OPPONENT "
        f"--games N --seed-index i` for each seed (colours alternated; N: "
        + ", ".join(f"{n} against {name}" for name, n in games.items())
        + ").",
        "",
        f"- Wall time of the training run, process start to exit (compiling included): "
        f"**{wall:.0f} s** (budget {budget} s); {summary['steps_per_s']:.0f} moves of self-play "
        "per second over all seeds.",
        f"- Target: {target}: **{'met' if passed else 'missed'}**.",
        "",
        *ARENA_HEADER,
    ]
    lines += [
        arena_row(i, name, r) for i, per_seed in enumerate(results) for name, r in per_seed.items()
    ]
    if more:
        lines += [
            "",
            f"The same networks with {args.also_simulations} simulations per move instead of "
            f"{config['eval_simulations']} (`--simulations {args.also_simulations}`), against "
            f"{first_opponent} (not the target's setting):",
            "",
            *ARENA_HEADER,
        ]
        lines += [arena_row(i, first_opponent, r) for i, r in enumerate(more)]
    opponent = config["eval_opponent"]
    lines += [
        "",
        f"Learning curve: the mean outcome (+1 win, 0 draw, -1 loss) of {args.eval_games} games "
        f"against {opponent} per seed, during training:",
        "",
        "| moves of self-play per seed | "
        + " | ".join(f"seed {i}" for i in range(args.seeds))
        + " |",
        "|---:|" + "---:|" * args.seeds,
    ]
    for step, returns in curve:
        lines.append(f"| {step:,} | " + " | ".join(f"{x:+.2f}" for x in returns) + " |")
    if curves:
        names = list(curves)
        lines += [
            "",
            f"Win rate of seed 0's network at each checkpoint, {args.curve_games} games against "
            f"each opponent (`bellman arena RUN OPPONENT --snapshots --games "
            f"{args.curve_games}`; wins / draws / losses):",
            "",
            "| moves of self-play | " + " | ".join(names) + " |",
            "|---:|" + "---:|" * len(names),
        ]
        for row in zip(*(curves[n] for n in names), strict=True):
            cells = [
                f"{p['wins'] / p['games']:.2f} ({p['wins']}/{p['draws']}/{p['losses']})"
                for p in row
            ]
            lines.append(f"| {row[0]['step']:,} | " + " | ".join(cells) + " |")
    if elo is not None:
        lines += [
            "",
            f"Elo ladder of seed 0's networks at its checkpoints (`bellman arena RUN --ladder "
            f"--games {elo['games_per_match']}`; the random player at 0):",
            "",
            "| player | Elo |",
            "|---|---:|",
        ]
        lines += [f"| {p['player']} | {p['elo']:+.0f} |" for p in elo["players"]]
    body = "\n".join(lines)
    name = SECTIONS[args.game]
    if args.note:
        body = args.note + "\n\n" + body
    command = "python benchmarks/alphazero_games.py " + " ".join(sys.argv[1:])
    write_section(name, body, meta, command)
    print(body)


if __name__ == "__main__":
    main()
