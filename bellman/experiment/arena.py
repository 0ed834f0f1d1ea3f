"""`bellman arena`: two players of a two-player game, many games side by side, colours
alternated; and the Elo ladder of a self-play run's networks over its training.

A player is a run directory (its newest checkpoint's network, seed 0 unless told, searching as
the run evaluates: `eval_simulations`, no noise) or a built-in player (`bellman.envs.players`):
`random`, `minimax` (tic-tac-toe's exact play), `alphabeta[:DEPTH]` (Connect Four, depth 4 by
default) or `mcts[:SIMULATIONS]` (pure MCTS with random rollouts, 400 by default).

A match's result is the first player's wins, draws and losses, its score (W + D/2) / N with a
95% interval (normal, from the games' points), the Wilson 95% intervals of its win and loss
rates, and the Elo difference the score implies, 400 log10(s / (1 - s)).

The ladder (`ladder`) rates a run's snapshots (its network at every checkpoint, kept in
RUN_DIR/snapshots) and the random player: each snapshot plays the random player, the snapshot
before it and the last one; Elo ratings are the maximum-likelihood fit of the logistic (Elo)
model to all the games, draws counting half a win for each side, the random player at 0.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from scipy import optimize

from bellman import config as cfg
from bellman.envs import registry
from bellman.envs.games import GAMES, GameEnv
from bellman.errors import ConfigError, EnvError, RunDirError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.policy import TrainedRun, open_run
from bellman.experiment.train import SNAPSHOTS
from bellman.runners import selfplay

BUILTIN = {"random": None, "minimax": "tic_tac_toe", "alphabeta": "connect_four", "mcts": None}
"""The built-in players, and the one game a player plays only (None: every game)."""
DEFAULT_DEPTH = 4
DEFAULT_SIMULATIONS = 400
MAX_GAMES = 100_000
Z95 = 1.959963984540054


@dataclass
class Contender:
    """One side of a match."""

    label: str
    game: str | None
    """The game it plays: a run's, or the one game of a built-in player that plays one only
    (None: any game)."""
    make: Any
    """`make(env) -> BatchedPlayer`."""
    is_run: bool = False


def builtin(spec: str) -> Contender | None:
    """The built-in player `spec` (`name` or `name:number`), or None if `spec` names none."""
    name, _, number = spec.partition(":")
    if name not in BUILTIN:
        return None
    if number and name not in ("alphabeta", "mcts"):
        raise ConfigError(f"'{name}' takes no number ('{spec}'); alphabeta:DEPTH and mcts:N do")
    value = DEFAULT_DEPTH if name == "alphabeta" else DEFAULT_SIMULATIONS
    if number:
        if not number.isdigit() or not 1 <= int(number) <= (8 if name == "alphabeta" else 100_000):
            limit = "a depth from 1 to 8" if name == "alphabeta" else "1 to 100,000 simulations"
            raise ConfigError(f"'{spec}': {name} takes {limit}, not '{number}'")
        value = int(number)

    def make(env: GameEnv) -> selfplay.BatchedPlayer:
        from bellman.envs import players

        if name == "alphabeta":
            return selfplay.batched(players.connect_four_alphabeta(value))
        if name == "mcts":
            return selfplay.batched(players.pure_mcts(env.game, value))
        return selfplay.opponent_player(name, env, value)

    label = spec if number or name not in ("alphabeta", "mcts") else f"{name}:{value}"
    return Contender(label, BUILTIN[name], make)


def open_self_play(path: Path, seed_index: int) -> TrainedRun:
    """The run on a game in `path` (its newest checkpoint), checked to have seed
    `seed_index`."""
    trained = open_run(path)
    if not isinstance(trained.env.jax_env, GameEnv):
        raise RunDirError(
            f"{path} is a {trained.info.name} run on {trained.env.id}; the arena plays the runs "
            f"of alphazero and muzero on two-player games"
        )
    seeds = trained.settings.seeds
    if not (cfg.is_int(seed_index) and 0 <= seed_index < seeds):
        raise ConfigError(f"{path} has seeds 0..{seeds - 1}, not {seed_index!r}")
    return trained


def run_player(path: Path, seed_index: int, simulations: int | None) -> Contender:
    """The network of seed `seed_index` of the self-play run in `path`, with its search."""
    trained = open_self_play(path, seed_index)
    seeds = trained.settings.seeds
    config = trained.config
    if simulations is not None:
        config = dataclasses.replace(config, eval_simulations=simulations)
    state = jax.tree.map(lambda x: x[seed_index], trained.algo_state)
    module = trained.info.module

    def make(env: GameEnv) -> selfplay.BatchedPlayer:
        return selfplay.agent_player(module, config, env, state)

    label = f"{path}" + (f"@{seed_index}" if seeds > 1 else "")
    return Contender(label, trained.env.id, make, is_run=True)


def contender(spec: str, seed_index: int = 0, simulations: int | None = None) -> Contender:
    """A run directory or a built-in player, from what the command line names."""
    made = builtin(spec)
    if made is not None:
        return made
    path = Path(spec)
    if path.is_dir():
        return run_player(path, seed_index, simulations)
    names = ", ".join(BUILTIN)
    raise ConfigError(
        f"'{spec}' is neither a run directory nor a built-in player ({names}, "
        "alphabeta:DEPTH, mcts:N)"
    )


def game_of(contenders: list[Contender], env: str | None) -> GameEnv:
    """The game the contenders play: their runs' (one game), or `env` for built-in players."""
    runs = {c.game for c in contenders if c.is_run and c.game is not None}
    if len(runs) > 1:
        raise EnvError(f"the runs were trained on different games ({', '.join(sorted(runs))})")
    if env is not None:
        if runs and env not in runs:
            raise EnvError(f"--env {env} is not the game the run was trained on ({runs.pop()})")
        game = env
    elif runs:
        game = runs.pop()
    else:
        raise ConfigError(f"two built-in players need the game to play: --env ({', '.join(GAMES)})")
    if game not in GAMES:
        raise EnvError(f"'{game}' is not a two-player game bellman plays ({', '.join(GAMES)})")
    for c in contenders:
        if not c.is_run and c.game is not None and c.game != game:
            raise EnvError(f"{c.label} plays {c.game} only, not {game}")
    resolved = registry.resolve(game)
    assert isinstance(resolved.jax_env, GameEnv)
    return resolved.jax_env


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's 95% interval of a rate."""
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def elo_difference(score: float) -> float:
    """The Elo difference a score implies (+-inf for a clean sweep)."""
    if score <= 0.0:
        return -math.inf
    if score >= 1.0:
        return math.inf
    return 400.0 * math.log10(score / (1.0 - score))


def summarize(outcomes: np.ndarray) -> dict[str, Any]:
    """Wins, draws and losses of `outcomes` (+1, 0, -1 per game), with their statistics."""
    n = int(outcomes.size)
    wins, draws, losses = (int((outcomes == v).sum()) for v in (1, 0, -1))
    points = (outcomes + 1.0) / 2.0
    score = float(points.mean())
    half = Z95 * float(points.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return {
        "games": n,
        "wins": wins,
        "draws": draws,
        "losses": losses,
        "score": score,
        "score_interval": [max(0.0, score - half), min(1.0, score + half)],
        "win_rate_interval": list(wilson(wins, n)),
        "loss_rate_interval": list(wilson(losses, n)),
        "elo_difference": elo_difference(score),
    }


def check_games(games: Any) -> int:
    return cfg.check_int("games", games, 1, MAX_GAMES, "games are played side by side")


def play(
    env: GameEnv, a: selfplay.BatchedPlayer, b: selfplay.BatchedPlayer, games: int, seed: int
) -> np.ndarray:
    """`games` games of `a` against `b`, colours alternated: `a`'s outcomes."""
    fn = jax.jit(lambda key: selfplay.play_match(env, a, b, key, games)[0])
    return np.asarray(fn(jax.random.PRNGKey(seed)), np.float64)


def arena(
    a: str,
    b: str,
    games: int = 100,
    env: str | None = None,
    seed: int = 0,
    seed_index: int = 0,
    simulations: int | None = None,
) -> dict[str, Any]:
    """Player `a` against player `b` (run directories or built-in players), `games` games
    with colours alternated (`a` first in the even-numbered ones): `summarize` of `a`'s
    outcomes, with the players, the game and the games as first and as second player."""
    games = check_games(games)
    cfg.check_int("seed", seed, 0, cfg.SEED_MAX, "JAX's random keys take 32-bit seeds")
    first, second = contender(a, seed_index, simulations), contender(b, seed_index, simulations)
    game = game_of([first, second], env)
    outcomes = play(game, first.make(game), second.make(game), games, seed)
    return {
        "a": first.label,
        "b": second.label,
        "env": game.id,
        **summarize(outcomes),
        "as_first": summarize(outcomes[0::2]) if games > 1 else None,
        "as_second": summarize(outcomes[1::2]) if games > 1 else None,
    }


def report(result: dict[str, Any]) -> str:
    """The lines `bellman arena` prints."""
    lo, hi = result["score_interval"]
    lines = [
        f"{result['a']} vs {result['b']} on {result['env']}, {result['games']} games "
        "(colours alternated)",
        f"  wins {result['wins']}, draws {result['draws']}, losses {result['losses']}; "
        f"score {result['score']:.3f} [95%: {lo:.3f}, {hi:.3f}]; "
        f"Elo difference {result['elo_difference']:+.0f}",
    ]
    for side in ("as_first", "as_second"):
        part = result.get(side)
        if part:
            lines.append(
                f"  {side.replace('_', ' ')}: wins {part['wins']}, draws {part['draws']}, "
                f"losses {part['losses']}"
            )
    lo, hi = result["loss_rate_interval"]
    lines.append(f"  loss rate 95% interval (Wilson): [{lo:.3f}, {hi:.3f}]")
    return "\n".join(lines)


# ----- the ladder -----


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """A self-play run's snapshots, oldest first."""
    return ckpt.list_checkpoints(run_dir / SNAPSHOTS)


def fit_elo(
    players: int, results: list[tuple[int, int, float, int]], anchor: int = 0
) -> np.ndarray:
    """Elo ratings of `players` from `results` (i, j, points of i, games): the maximum of the
    logistic model's likelihood, P(i beats j) = 1 / (1 + 10^((R_j - R_i) / 400)), with
    player `anchor` at 0. A small prior (a virtual draw against the anchor for each player)
    keeps a player who won or lost every game at a finite rating."""
    scale = math.log(10) / 400.0
    pairs = [*results, *((p, anchor, 0.5, 1) for p in range(players) if p != anchor)]

    def negative_log_likelihood(free: np.ndarray) -> float:
        r = np.insert(free, anchor, 0.0)
        total = 0.0
        for i, j, points, n in pairs:
            p = 1.0 / (1.0 + math.exp(-scale * (r[i] - r[j])))
            p = min(max(p, 1e-12), 1 - 1e-12)
            total -= points * math.log(p) + (n - points) * math.log(1 - p)
        return total

    solved = optimize.minimize(negative_log_likelihood, np.zeros(players - 1), method="BFGS")
    return np.insert(solved.x, anchor, 0.0)


def snapshot_states(
    path: Path, seed_index: int, simulations: int | None, at_least: int = 1
) -> tuple[TrainedRun, Any, list[tuple[int, int]], list[Any]]:
    """The run in `path` (its config searching with `simulations`, if given), its snapshots'
    (update, env step) and seed `seed_index`'s algorithm state at each."""
    trained = open_self_play(path, seed_index)
    found = snapshots(path)
    if len(found) < at_least:
        raise RunDirError(
            f"{path} has {len(found)} snapshot(s) in {SNAPSHOTS}/; {at_least} or more are needed "
            "(a self-play run saves one at every checkpoint)"
        )
    env = trained.env.jax_env
    assert isinstance(env, GameEnv)
    template = {"params": jax.eval_shape(lambda s: s.params, trained.algo_state)}
    config = trained.config
    if simulations is not None:
        config = dataclasses.replace(config, eval_simulations=simulations)
    states, when = [], []
    for update, snapshot in found:
        parts, meta = ckpt.load(snapshot, template)
        params = jax.tree.map(lambda x: x[seed_index], parts["params"])
        state = jax.tree.map(lambda x: x[seed_index], trained.algo_state).replace(params=params)
        states.append(state)
        when.append((update, int(meta.get("step", 0))))
    return trained, config, when, states


def curve(
    run_dir: str | Path,
    opponent: str,
    games: int = 100,
    seed: int = 0,
    seed_index: int = 0,
    simulations: int | None = None,
) -> dict[str, Any]:
    """The learning curve of a run against a fixed `opponent` (a built-in player or another
    run): its network at every snapshot plays `games` games against it, colours alternated."""
    games = check_games(games)
    path = cfg.as_path("run_dir", run_dir)
    trained, config, found, states = snapshot_states(path, seed_index, simulations)
    env = trained.env.jax_env
    assert isinstance(env, GameEnv)
    other = contender(opponent, seed_index, simulations)
    game_of([other], env.id)
    b, module = other.make(env), trained.info.module

    def match(state: Any, key: jax.Array) -> jax.Array:  # one program for every snapshot
        agent = selfplay.agent_player(module, config, env, state)
        return selfplay.play_match(env, agent, b, key, games)[0]

    compiled = jax.jit(match)
    points = []
    for (update, step), state in zip(found, states, strict=True):
        outcomes = np.asarray(compiled(state, jax.random.PRNGKey(seed)), np.float64)
        points.append({"update": update, "step": step, **summarize(outcomes)})
    return {"run_dir": str(path), "env": env.id, "opponent": other.label, "points": points}


def curve_report(result: dict[str, Any]) -> str:
    """The lines `bellman arena RUN_DIR OPPONENT --snapshots` prints."""
    lines = [f"{result['run_dir']} at each snapshot vs {result['opponent']} on {result['env']}"]
    for p in result["points"]:
        lo, hi = p["score_interval"]
        lines.append(
            f"  step {p['step']:>12,}: wins {p['wins']}, draws {p['draws']}, losses "
            f"{p['losses']}; score {p['score']:.3f} [95%: {lo:.3f}, {hi:.3f}]"
        )
    return "\n".join(lines)


def ladder(
    run_dir: str | Path, games: int = 100, seed: int = 0, seed_index: int = 0
) -> dict[str, Any]:
    """The Elo ladder of a run's snapshots (see the module docstring)."""
    games = check_games(games)
    path = cfg.as_path("run_dir", run_dir)
    trained, config, found, states = snapshot_states(path, seed_index, None, at_least=2)
    env = trained.env.jax_env
    assert isinstance(env, GameEnv)
    module = trained.info.module
    agent = lambda state: selfplay.agent_player(module, config, env, state)
    random = selfplay.opponent_player("random", env, 0)
    # two programs for every match: a snapshot against the random player, and against another
    against_random = jax.jit(
        lambda a, key: selfplay.play_match(env, agent(a), random, key, games)[0]
    )
    against_agent = jax.jit(
        lambda a, b, key: selfplay.play_match(env, agent(a), agent(b), key, games)[0]
    )
    labels = ["random", *(f"update {u}" for u, _ in found)]
    last = len(states)
    pairs = sorted(
        {(i, 0) for i in range(1, last + 1)}
        | {(i, i - 1) for i in range(2, last + 1)}
        | {(i, last) for i in range(1, last)}
    )
    results, matches = [], []
    for n, (i, j) in enumerate(pairs):  # player k > 0 is snapshot k - 1; j = 0 is random
        key = jax.random.PRNGKey(seed + n)
        if j == 0:
            outcomes = against_random(states[i - 1], key)
        else:
            outcomes = against_agent(states[i - 1], states[j - 1], key)
        outcomes = np.asarray(outcomes, np.float64)
        points = float(((outcomes + 1) / 2).sum())
        results.append((i, j, points, games))
        matches.append({"a": labels[i], "b": labels[j], **summarize(outcomes)})
    ratings = fit_elo(last + 1, results)
    return {
        "run_dir": str(path),
        "env": env.id,
        "games_per_match": games,
        "players": [
            {"player": label, "update": None if k == 0 else found[k - 1][0], "elo": float(r)}
            for k, (label, r) in enumerate(zip(labels, ratings, strict=True))
        ],
        "matches": matches,
    }


def ladder_report(result: dict[str, Any]) -> str:
    lines = [
        f"Elo ladder of {result['run_dir']} on {result['env']} ({result['games_per_match']} "
        "games per match; the random player at 0)"
    ]
    for p in result["players"]:
        lines.append(f"  {p['player']:>16s}  {p['elo']:+8.0f}")
    return "\n".join(lines)
