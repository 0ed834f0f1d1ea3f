"""`bellman play RUN_DIR`: a person against the agent of a run on a game (alphazero, muzero),
in the terminal.

The board is drawn in text after every move; the person types a move (a tic-tac-toe cell 1-9, a
Connect Four column 1-7, a Go or Othello point such as D4, or `pass`), and an illegal or
unreadable move is refused with a sentence saying why, and asked again. The agent searches as
the run evaluates (`eval_simulations`, or `--simulations`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from bellman.envs import registry
from bellman.envs.games import GameEnv
from bellman.errors import EnvError
from bellman.experiment.arena import run_player

PLAYABLE = ("tic_tac_toe", "connect_four", "othello", "go_9x9")
GO_COLUMNS = "ABCDEFGHJ"  # Go skips I
OTHELLO_COLUMNS = "abcdefgh"


def _marks(state: Any, game: str) -> np.ndarray:
    """The board as colours, 0 for the first mover, 1 for the second, -1 empty (row-major)."""
    board = np.asarray(state._x.board)
    if game in ("tic_tac_toe", "connect_four"):
        return board
    if game == "go_9x9":  # pgx: positive chain ids for black (first), negative for white
        return np.where(board > 0, 0, np.where(board < 0, 1, -1))
    return np.where(board == 1, 0, np.where(board == -1, 1, -1))  # othello: 1 black, -1 white


def draw(state: Any, game: str) -> str:
    """The board in text: X / O for the first / second mover (tic-tac-toe, Connect Four) or
    black / white stones (# / o) for Go and Othello, with the coordinates moves are typed in."""
    marks = _marks(state, game)
    if game == "tic_tac_toe":
        cells = [str(i + 1) if m < 0 else "XO"[m] for i, m in enumerate(marks)]
        rows = [" " + " | ".join(cells[r * 3 : r * 3 + 3]) for r in range(3)]
        return "\n---+---+---\n".join(rows)
    if game == "connect_four":
        grid = marks.reshape(6, 7)
        lines = ["| " + " ".join("." if m < 0 else "XO"[m] for m in row) + " |" for row in grid]
        return "\n".join([*lines, "+---------------+", "  1 2 3 4 5 6 7"])
    size = 9 if game == "go_9x9" else 8
    letters = GO_COLUMNS if game == "go_9x9" else OTHELLO_COLUMNS
    grid = marks.reshape(size, size)
    lines = [
        f"{size - r:>2} " + " ".join("." if m < 0 else "#o"[m] for m in row)
        for r, row in enumerate(grid)
    ]
    return "\n".join([*lines, "   " + " ".join(letters)])


def parse_move(text: str, game: str, legal: np.ndarray) -> int | str:
    """The action `text` names, or a sentence saying why it names none that is legal now."""
    text = text.strip()
    if game == "tic_tac_toe":
        if not (text.isdigit() and 1 <= int(text) <= 9):
            return f"'{text}' is not a cell: type a number from 1 to 9"
        action = int(text) - 1
        return action if legal[action] else f"cell {text} is taken: choose an empty one"
    if game == "connect_four":
        if not (text.isdigit() and 1 <= int(text) <= 7):
            return f"'{text}' is not a column: type a number from 1 to 7"
        action = int(text) - 1
        return action if legal[action] else f"column {text} is full: choose another"
    size = 9 if game == "go_9x9" else 8
    letters = GO_COLUMNS if game == "go_9x9" else OTHELLO_COLUMNS
    if text.lower() == "pass":
        action = size * size
        if legal[action]:
            return action
        return "you cannot pass now: you have a legal move (Othello passes only without one)"
    column, row = text[:1], text[1:]
    if not (column.upper() in letters.upper() and column and row.isdigit()):
        return (
            f"'{text}' is not a point: type a column {letters[0]}-{letters[-1]} and a row 1-{size}"
        )
    c = letters.upper().index(column.upper())
    r = size - int(row)
    if not 0 <= r < size:
        return f"'{text}' is off the board: rows are 1 to {size}"
    action = r * size + c
    return action if legal[action] else f"{text} is not a legal move here"


def play(
    run_dir: str | Path,
    first: bool = True,
    seed_index: int = 0,
    simulations: int | None = None,
    seed: int = 0,
    read: Callable[[str], str] = input,
    out: TextIO | None = None,
) -> float:
    """One game of a person (`read` gives the typed moves) against the run's agent; returns the
    person's outcome, +1, 0 or -1. EOF on input ends the game as abandoned (EnvError)."""
    write = (out or sys.stdout).write
    path = Path(run_dir)
    agent = run_player(path, seed_index, simulations)
    if agent.game not in PLAYABLE:
        raise EnvError(
            f"bellman play draws {', '.join(PLAYABLE)}; {agent.game} has no text board yet "
            "(bellman arena plays it)"
        )
    resolved = registry.resolve(agent.game)
    env = resolved.jax_env
    assert isinstance(env, GameEnv)
    player = agent.make(env)
    act = jax.jit(lambda s, k: player(jax.tree.map(lambda x: x[None], s), k)[0])
    key = jax.random.PRNGKey(seed)
    state = env.init(key)
    person = int(state.current_player) if first else 1 - int(state.current_player)
    marks = "X" if first else "O"
    if agent.game in ("go_9x9", "othello"):
        marks = "# (black)" if first else "o (white)"
    write(f"you play {marks} against {agent.label} on {agent.game}\n\n{draw(state, agent.game)}\n")
    while not bool(state.terminated):
        mover = int(state.current_player)
        if mover == person:
            legal = np.asarray(state.legal_action_mask)
            while True:
                try:
                    text = read("your move: ")
                except EOFError:
                    raise EnvError("the game was abandoned (no more input)") from None
                move = parse_move(text, agent.game, legal)
                if isinstance(move, int):
                    break
                write(f"{move}\n")
            action = move
        else:
            key, k = jax.random.split(key)
            action = int(act(state, k))
            write(f"the agent plays {describe(action, agent.game)}\n")
        state = env.play(state, jnp.int32(action))
        write(f"\n{draw(state, agent.game)}\n")
        if bool(state.terminated):
            outcome = float(np.asarray(state.rewards)[person])
            write({1.0: "you win\n", 0.0: "a draw\n", -1.0: "the agent wins\n"}[outcome])
            return outcome
    return 0.0


def describe(action: int, game: str) -> str:
    """A move as the person would type it."""
    if game in ("tic_tac_toe", "connect_four"):
        return str(action + 1)
    size = 9 if game == "go_9x9" else 8
    if action == size * size:
        return "pass"
    letters = GO_COLUMNS if game == "go_9x9" else OTHELLO_COLUMNS
    return f"{letters[action % size]}{size - action // size}"
