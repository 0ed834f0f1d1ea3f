"""Reference players for pgx two-player board games: random, exact minimax, alpha-beta, pure MCTS.

Fixed opponents to measure a learned agent against (AlphaZero, MuZero): how often does it beat a
random player, draw against perfect tic-tac-toe play, beat a shallow Connect Four search?

Every player is a pure JAX function `act(state, key) -> action` (int32 scalar) for ONE unbatched
`pgx.State`, choosing only legal actions; callers `jax.vmap` and `jax.jit` it over many games:
- `random_player`: uniform over the legal actions.
- `tictactoe_minimax_player`: a uniformly random optimal move, read from a table of the exact
  game-theoretic value of every reachable tic-tac-toe position (`tictactoe_table`), solved once
  with numpy by negamax over the 5,478 reachable positions.
- `connect_four_alphabeta(depth)`: depth-limited negamax (Knuth & Moore, 1975) over all columns,
  evaluated full-width with `jax.vmap` (7^depth leaves) instead of pruned: it returns the value and
  the optimal moves alpha-beta of the same depth returns; pruning only saves time on a CPU.
- `pure_mcts(env, num_simulations)`: PUCT search (`mctx.muzero_policy`) with a uniform prior,
  unvisited moves tried first and a leaf value from one uniformly random rollout (Monte Carlo tree
  search without a network).

`play_games` plays two players against each other in many games at once, colours alternated.

pgx conventions these players rely on (pgx 2.6): `state.current_player` is a player id (0/1),
drawn at random by `env.init`; the pieces on the board (`state._x.board`, -1 empty) carry a
colour, and colour 0 always moves first (`state._x.color` is the colour to move). So player id 0
is not "the first player": `play_games` reads who moves first from the initial state.
`state.rewards[i]` is player i's reward for the last step (+1 win, -1 loss, 0 otherwise), and a
terminal state's `legal_action_mask` is all True.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import mctx
import numpy as np

if TYPE_CHECKING:  # (pgx is imported where a game is made: importing it starts JAX)
    import pgx

Player = Callable[["pgx.State", jax.Array], jax.Array]
"""`act(state, key) -> action`: an int32 scalar action for one unbatched pgx state."""


def _sample_mask(key: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniformly random index among the True entries of `mask` `[A]`, as an int32 scalar."""
    return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf)).astype(jnp.int32)


def _random_argmax(key: jax.Array, values: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniformly random action among the legal ones (`mask`) of highest `values` `[A]`.

    Falls back to any legal action when no value is comparable (NaN), which happens only at
    terminal states, where the action has no effect.
    """
    masked = jnp.where(mask, values, -jnp.inf)
    best = mask & (masked == jnp.max(masked))
    return _sample_mask(key, jnp.where(jnp.any(best), best, mask))


def random_player(state: pgx.State, key: jax.Array) -> jax.Array:
    """Plays a uniformly random legal action.

    Args:
        state: one unbatched pgx state.
        key: a PRNG key.

    Returns:
        An int32 scalar action with `state.legal_action_mask[action]` True.
    """
    return _sample_mask(key, state.legal_action_mask)


# --- tic-tac-toe: exact minimax by table lookup ----------------------------------------------

_TTT_ROWS = ((0, 1, 2), (3, 4, 5), (6, 7, 8))
_TTT_LINES = (*_TTT_ROWS, *zip(*_TTT_ROWS, strict=True), (0, 4, 8), (2, 4, 6))
_TTT_POWERS = 3 ** np.arange(9)


@functools.cache
def tictactoe_table() -> np.ndarray:
    """The exact value of every reachable tic-tac-toe position, for the player to move.

    Positions are indexed by the base-3 encoding of the board, `sum((board[i] + 1) * 3**i)` over
    the cells 0..8 (row by row) of a pgx board (-1 empty, 0 for the first mover's pieces, 1 for
    the second's). The player to move is the first mover when both have as many pieces. Solved
    once by negamax from the empty board, not expanding finished games.

    Returns:
        A read-only float32 array `[3**9]`: +1 the player to move wins with best play, 0 draw,
        -1 loss (also at a finished game the previous player won), NaN for unreachable boards.
    """
    values = np.full(3**9, np.nan, np.float32)

    def solve(board: list[int]) -> float:
        index = int(np.dot(np.asarray(board) + 1, _TTT_POWERS))
        if not np.isnan(values[index]):
            return float(values[index])
        mover = 0 if board.count(0) == board.count(1) else 1
        if any(all(board[i] == 1 - mover for i in line) for line in _TTT_LINES):
            value = -1.0  # the previous move won
        elif -1 not in board:
            value = 0.0  # a full board without a line: draw
        else:
            value = max(
                -solve([*board[:cell], mover, *board[cell + 1 :]])
                for cell in range(9)
                if board[cell] == -1
            )
        values[index] = value
        return value

    solve([-1] * 9)
    values.flags.writeable = False
    return values


def tictactoe_position_count() -> int:
    """The number of tic-tac-toe positions reachable by legal play, the empty board included."""
    return int(np.sum(~np.isnan(tictactoe_table())))


def _tictactoe_index(board: jax.Array) -> jax.Array:
    """The base-3 table index of a pgx tic-tac-toe board `[..., 9]` (int, -1 empty)."""
    return jnp.sum((board + 1) * jnp.asarray(_TTT_POWERS, jnp.int32), axis=-1)


def tictactoe_value(board: jax.Array) -> jax.Array:
    """The exact game-theoretic value of a tic-tac-toe position for the player to move.

    Args:
        board: `[..., 9]` int cells, row by row, as pgx's `state._x.board`: -1 empty, 0 the
            first mover's pieces, 1 the second mover's.

    Returns:
        `[...]` float32: +1 win, 0 draw, -1 loss with best play by both; NaN if unreachable.
    """
    return jnp.asarray(tictactoe_table())[_tictactoe_index(board)]


def tictactoe_minimax_player(state: pgx.State, key: jax.Array) -> jax.Array:
    """Plays a perfect tic-tac-toe move, uniformly at random among the optimal ones.

    A move's value is minus the table value of the position it leads to (`tictactoe_value`);
    ties between optimal moves are broken uniformly at random with `key`.

    Args:
        state: one unbatched pgx `tic_tac_toe` state.
        key: a PRNG key for the tie-break.

    Returns:
        An int32 scalar legal action of maximal game-theoretic value for the player to move.
    """
    board, colour = state._x.board, state._x.color
    children = jnp.where(jnp.eye(9, dtype=bool), colour, board[None, :])  # [9 moves, 9 cells]
    return _random_argmax(key, -tictactoe_value(children), state.legal_action_mask)


# --- Connect Four: depth-limited negamax -----------------------------------------------------

_C4_ROWS, _C4_COLS = 6, 7


def _connect_four_windows() -> np.ndarray:
    """The 69 lines of 4 cells of a 6x7 board (index row * 7 + col): 24 horizontal, 21 vertical,
    12 + 12 diagonal."""
    windows = []
    for d_row, d_col in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for row in range(_C4_ROWS):
            for col in range(_C4_COLS):
                cells = [(row + k * d_row, col + k * d_col) for k in range(4)]
                if all(0 <= r < _C4_ROWS and 0 <= c < _C4_COLS for r, c in cells):
                    windows.append([r * _C4_COLS + c for r, c in cells])
    return np.asarray(windows, np.int32)


_C4_WINDOWS = _connect_four_windows()
_C4_WINDOW_WEIGHTS = np.asarray([0.0, 0.0, 2.0, 5.0, 0.0], np.float32)
"""Heuristic weight of a window holding k (index) pieces of one player and none of the other;
4 in a row ends the game and is scored as a win instead."""
_C4_CENTRE_WEIGHT = 3.0
_C4_CENTRE_CELLS = np.arange(_C4_ROWS) * _C4_COLS + _C4_COLS // 2
C4_WIN_SCORE = 10_000.0
"""A win found with d plies of search left scores `C4_WIN_SCORE * d` (faster wins score more);
far above any heuristic value (at most 69 * 5 + 6 * 3)."""


def connect_four_heuristic(board: jax.Array, colour: jax.Array) -> jax.Array:
    """A static evaluation of a non-terminal Connect Four position for the pieces of `colour`.

    Own minus opponent's score, each: 5 per window of 4 cells (69 of them: horizontal, vertical,
    both diagonals) holding 3 of the player's pieces and none of the other's, 2 per such window
    holding 2, and 3 per piece in the centre column.

    Args:
        board: `[42]` int cells, as pgx's `state._x.board` (row 0 on top): -1 empty, else colour.
        colour: the colour (0/1) whose view the score takes.

    Returns:
        A float32 scalar; positive favours `colour`.
    """
    weights = jnp.asarray(_C4_WINDOW_WEIGHTS)

    def score(mine: jax.Array, theirs: jax.Array) -> jax.Array:
        own = jnp.sum(mine[_C4_WINDOWS], axis=-1)
        blocked = jnp.any(theirs[_C4_WINDOWS], axis=-1)
        windows = jnp.sum(jnp.where(blocked, 0.0, weights[own]))
        return windows + _C4_CENTRE_WEIGHT * jnp.sum(mine[_C4_CENTRE_CELLS])

    mine, theirs = board == colour, board == 1 - colour
    return score(mine, theirs) - score(theirs, mine)


@functools.cache
def _connect_four_env() -> pgx.Env:
    import pgx

    return pgx.make("connect_four")


def _connect_four_negamax(state: pgx.State, depth: int) -> jax.Array:
    """The depth-limited negamax value of a non-terminal state for the player to move."""
    values = connect_four_action_values(state, depth)
    return jnp.max(jnp.where(state.legal_action_mask, values, -jnp.inf))


def connect_four_action_values(state: pgx.State, depth: int) -> jax.Array:
    """Depth-limited negamax value of each move, for the player to move.

    All 7^depth lines are expanded (nested `jax.vmap` over the 7 columns): a move that wins scores
    `C4_WIN_SCORE * depth` (with `depth` plies of search left here, so faster wins score higher
    and later losses lose less), one that fills the board without a winner 0, and a position
    `depth` plies down is scored by `connect_four_heuristic` for its player to move, negated at
    each ply (negamax). Alpha-beta of the same depth returns the same best value and one of the
    same best moves; it only skips lines that cannot change them.

    Args:
        state: one unbatched, non-terminal pgx `connect_four` state.
        depth: plies to search, at least 1 (1: the move's own result and heuristic).

    Returns:
        `[7]` float32 values; illegal moves (full columns) are -inf.
    """
    env = _connect_four_env()
    children = jax.vmap(env.step, in_axes=(None, 0))(state, jnp.arange(_C4_COLS, dtype=jnp.int32))
    if depth == 1:
        future = -jax.vmap(connect_four_heuristic)(children._x.board, children._x.color)
    else:
        future = -jax.vmap(lambda child: _connect_four_negamax(child, depth - 1))(children)
    won = children.rewards[:, state.current_player]  # +1 for a winning move, else 0
    values = jnp.where(children.terminated, won * C4_WIN_SCORE * depth, future)
    return jnp.where(state.legal_action_mask, values, -jnp.inf)


def connect_four_alphabeta(depth: int) -> Player:
    """A Connect Four player searching `depth` plies (`connect_four_action_values`).

    Ties between equally valued moves are broken uniformly at random with `key` (alpha-beta with
    a random move order). Depth 4 evaluates 7^4 = 2401 leaves per move.

    Args:
        depth: plies to search, at least 1.

    Returns:
        `act(state, key) -> action` for one unbatched pgx `connect_four` state.
    """
    if depth < 1:
        raise ValueError(f"connect_four_alphabeta: depth must be at least 1, got {depth}")

    def act(state: pgx.State, key: jax.Array) -> jax.Array:
        values = connect_four_action_values(state, depth)
        return _random_argmax(key, values, state.legal_action_mask)

    return act


# --- pure Monte Carlo tree search -------------------------------------------------------------


def random_rollout(env: pgx.Env, state: pgx.State, key: jax.Array) -> jax.Array:
    """The outcome of one game finished with uniformly random legal moves, from `state` on.

    Args:
        env: the pgx environment of `state`.
        state: one unbatched pgx state (a finished one gives 0).
        key: a PRNG key.

    Returns:
        A float32 scalar: the rewards collected by `state.current_player` until the game ends
        (+1 win, 0 draw, -1 loss in the board games).
    """
    player = state.current_player

    def unfinished(carry: tuple[pgx.State, jax.Array, jax.Array]) -> jax.Array:
        return ~(carry[0].terminated | carry[0].truncated)

    def move(carry: tuple[pgx.State, jax.Array, jax.Array]) -> tuple:
        state, key, total = carry
        key, act_key, step_key = jax.random.split(key, 3)
        state = env.step(state, random_player(state, act_key), step_key)
        return state, key, total + state.rewards[player]

    _, _, total = jax.lax.while_loop(unfinished, move, (state, key, jnp.zeros((), jnp.float32)))
    return total


def _qtransform_unvisited_first(tree: mctx.Tree, node_index: jax.Array) -> jax.Array:
    """UCT's selection values for `mctx.muzero_action_selection`: unvisited legal moves first.

    A visited move's Q-value (an outcome in [-1, 1]) is rescaled to [0, 1]; an unvisited legal
    move scores above any visited one, so each is tried once before any is tried twice (as in
    UCT); an illegal move (read from the node's pgx state) scores -inf, which keeps the search
    inside the rules below the root too (mctx masks invalid actions at the root only). mctx's
    default instead scores unvisited moves as the worst sibling, and one lucky rollout then draws
    all the visits: with 100 simulations that player lost ~10% of tic-tac-toe games to random.
    """
    visited = tree.children_visits[node_index] > 0
    legal = tree.embeddings.legal_action_mask[node_index]
    scaled = (tree.qvalues(node_index) + 1.0) / 2.0
    scores = jnp.where(visited, scaled, _UNVISITED_SCORE)
    return jnp.where(legal, scores, -jnp.inf)


_UNVISITED_SCORE = 1e6


def _uniform_logits(legal: jax.Array) -> jax.Array:
    """Prior logits uniform over the legal actions `[..., A]` (illegal: the lowest float)."""
    return jnp.where(legal, 0.0, jnp.finfo(jnp.float32).min)


def _expand(
    env: pgx.Env, key: jax.Array, action: jax.Array, state: pgx.State
) -> tuple[mctx.RecurrentFnOutput, pgx.State]:
    """One unbatched tree expansion: step the game, value the new node by a random rollout."""
    step_key, rollout_key = jax.random.split(key)
    next_state = env.step(state, action, step_key)
    done = next_state.terminated | next_state.truncated
    output = mctx.RecurrentFnOutput(
        reward=next_state.rewards[state.current_player],  # the reward of the player who moved
        discount=jnp.where(done, 0.0, -1.0),  # -1: the next node's value is the opponent's
        prior_logits=_uniform_logits(next_state.legal_action_mask),
        value=random_rollout(env, next_state, rollout_key),  # for the new node's player to move
    )
    return output, next_state


def _mcts_recurrent_fn(
    env: pgx.Env, params: None, key: jax.Array, action: jax.Array, state: pgx.State
) -> tuple[mctx.RecurrentFnOutput, pgx.State]:
    """mctx's batched `recurrent_fn`; the embedding is the batch `[B]` of pgx states."""
    del params
    keys = jax.random.split(key, action.shape[0])
    return jax.vmap(functools.partial(_expand, env))(keys, action, state)


def pure_mcts_search(
    env: pgx.Env,
    state: pgx.State,
    key: jax.Array,
    num_simulations: int,
    pb_c_init: float = 1.25,
) -> mctx.PolicyOutput:
    """Monte Carlo tree search without a network from one state (after Kocsis & Szepesvari, 2006).

    `mctx.muzero_policy` (PUCT selection) with a prior uniform over the legal moves, no Dirichlet
    noise, unvisited moves tried first (`_qtransform_unvisited_first`) and a new node valued by
    one uniformly random rollout to the end of the game (`random_rollout`). The tree's embeddings
    are pgx states; a transition's reward is the mover's and its discount -1 (0 into a finished
    game), so every node's value is for its own player to move.

    Args:
        env: the pgx environment (two-player, zero-sum, alternating moves).
        state: one unbatched, non-terminal state of `env`.
        key: a PRNG key.
        num_simulations: simulations (expansions and rollouts).
        pb_c_init: the PUCT exploration constant c_1.

    Returns:
        mctx's `PolicyOutput` for a batch of one: `action_weights` `[1, A]` are the root's visit
        frequencies, `search_tree` the tree.
    """
    rollout_key, search_key = jax.random.split(key)
    legal = state.legal_action_mask
    root = mctx.RootFnOutput(
        prior_logits=_uniform_logits(legal)[None],
        value=random_rollout(env, state, rollout_key)[None],
        embedding=jax.tree.map(lambda x: x[None], state),
    )
    return mctx.muzero_policy(
        params=None,
        rng_key=search_key,
        root=root,
        recurrent_fn=functools.partial(_mcts_recurrent_fn, env),
        num_simulations=num_simulations,
        invalid_actions=~legal[None],
        qtransform=_qtransform_unvisited_first,
        dirichlet_fraction=0.0,
        pb_c_init=pb_c_init,
    )


def pure_mcts(env: pgx.Env, num_simulations: int, *, pb_c_init: float = 1.25) -> Player:
    """A pure MCTS player: the most visited root move of `pure_mcts_search`.

    Ties between equally visited moves are broken uniformly at random with `key`.

    Args:
        env: the pgx environment (two-player, zero-sum, alternating moves).
        num_simulations: simulations per move.
        pb_c_init: the PUCT exploration constant c_1.

    Returns:
        `act(state, key) -> action` for one unbatched state of `env`.
    """
    if num_simulations < 1:
        raise ValueError(f"pure_mcts: num_simulations must be at least 1, got {num_simulations}")

    def act(state: pgx.State, key: jax.Array) -> jax.Array:
        search_key, tie_key = jax.random.split(key)
        policy = pure_mcts_search(env, state, search_key, num_simulations, pb_c_init)
        return _random_argmax(tie_key, policy.action_weights[0], state.legal_action_mask)

    return act


# --- matches ------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def play_games(
    env: pgx.Env, player_a: Player, player_b: Player, games: int, key: jax.Array
) -> jax.Array:
    """Plays `games` games of `env` between two players at once, colours alternated.

    `player_a` makes the first move in the even-numbered games and the second in the odd ones
    (pgx draws the first mover's player id at random; it is read from each initial state). All
    games advance together in one `jax.lax.while_loop` until every one has ended; both players
    act on every game at every step and the one to move is kept. Jitted: the players, `env` and
    `games` are static, so reuse the same player functions to reuse the compilation.

    Args:
        env: a two-player pgx environment.
        player_a: `act(state, key) -> action`, the player the outcomes are for.
        player_b: its opponent.
        games: the number of games.
        key: a PRNG key.

    Returns:
        `[games]` int32 outcomes for `player_a`: +1 win, 0 draw (or cut off), -1 loss.
    """
    init_key, key = jax.random.split(key)
    states = jax.vmap(env.init)(jax.random.split(init_key, games))
    a_first = jnp.arange(games) % 2 == 0
    a_id = jnp.where(a_first, states.current_player, 1 - states.current_player)
    game_index = jnp.arange(games)

    def unfinished(carry: tuple[pgx.State, jax.Array, jax.Array]) -> jax.Array:
        states = carry[0]
        return ~jnp.all(states.terminated | states.truncated)

    def move(carry: tuple[pgx.State, jax.Array, jax.Array]) -> tuple:
        states, key, total = carry
        key, a_key, b_key, step_key = jax.random.split(key, 4)
        action_a = jax.vmap(player_a)(states, jax.random.split(a_key, games))
        action_b = jax.vmap(player_b)(states, jax.random.split(b_key, games))
        actions = jnp.where(states.current_player == a_id, action_a, action_b)
        states = jax.vmap(env.step)(states, actions, jax.random.split(step_key, games))
        return states, key, total + states.rewards[game_index, a_id]

    total = jnp.zeros(games, jnp.float32)
    _, _, total = jax.lax.while_loop(unfinished, move, (states, key, total))
    return jnp.sign(total).astype(jnp.int32)


def summarize_outcomes(outcomes: jax.Array | np.ndarray) -> dict[str, int]:
    """Counts the wins, draws and losses in `play_games` outcomes (+1, 0, -1)."""
    outcomes = np.asarray(outcomes)
    return {
        "wins": int(np.sum(outcomes > 0)),
        "draws": int(np.sum(outcomes == 0)),
        "losses": int(np.sum(outcomes < 0)),
    }
