"""Reference players for pgx board games: exact tic-tac-toe values, Connect Four search against a
plain-Python alpha-beta, pure MCTS tactics, and the colour alternation of `play_games`."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pgx
import pytest
from pgx._src.games.connect_four import IDX as PGX_C4_LINES

from bellman.envs import players

TTT = pgx.make("tic_tac_toe")
C4 = pgx.make("connect_four")
KEYS = jax.random.split(jax.random.PRNGKey(3), 16)


@functools.cache
def _jitted_step(env: pgx.Env):
    return jax.jit(env.step)


def _position(env: pgx.Env, moves: list[int], seed: int = 0) -> pgx.State:
    """The state after `moves` from a fresh game (the first mover's player id drawn by `seed`)."""
    state = env.init(jax.random.PRNGKey(seed))
    for action in moves:
        state = _jitted_step(env)(state, jnp.int32(action))
    assert not bool(state.terminated)
    return state


@functools.cache
def _batched(player: players.Player):
    """`player` jitted and vmapped over keys, for one state."""
    return jax.jit(jax.vmap(player, in_axes=(None, 0)))


def _actions(player: players.Player, state: pgx.State, keys: jax.Array = KEYS) -> set[int]:
    return set(np.asarray(_batched(player)(state, keys)).tolist())


def _first_legal(state: pgx.State, key: jax.Array) -> jax.Array:
    """A deterministic player: the lowest-numbered legal action."""
    del key
    return jnp.argmax(state.legal_action_mask).astype(jnp.int32)


# --- random player and play_games ---------------------------------------------------------


def test_random_player_is_uniform_over_legal_actions():
    state = _position(TTT, [4, 0, 8])
    actions = np.asarray(_batched(players.random_player)(state, jax.random.split(KEYS[0], 3000)))
    counts = np.bincount(actions, minlength=9)
    legal = np.asarray(state.legal_action_mask)
    assert np.all(counts[~legal] == 0)
    np.testing.assert_allclose(counts[legal] / 3000, 1 / legal.sum(), atol=0.03)


def test_play_games_alternates_who_moves_first():
    # Both players take the lowest free cell: the first mover gets 0, 2, 4, 6 and wins on the
    # 2-4-6 diagonal. pgx draws the first mover's player id at random, so with 16 games a
    # "player_a is player 0" mix-up shows as a wrong sign in some game.
    outcomes = np.asarray(players.play_games(TTT, _first_legal, _first_legal, 16, KEYS[1]))
    np.testing.assert_array_equal(outcomes, np.tile([1, -1], 8))
    assert players.summarize_outcomes(outcomes) == {"wins": 8, "draws": 0, "losses": 8}


# --- tic-tac-toe minimax ----------------------------------------------------------------------


def _ttt_board(moves: list[int]) -> np.ndarray:
    board = -np.ones(9, np.int32)
    for ply, cell in enumerate(moves):
        board[cell] = ply % 2
    return board


def test_tictactoe_reachable_positions():
    assert players.tictactoe_position_count() == 5478
    # Decode every reachable board: 958 finished games, 626 won by the first mover, 316 by the
    # second, 16 drawn (the known census of tic-tac-toe).
    table = players.tictactoe_table()
    reachable = np.flatnonzero(~np.isnan(table))
    boards = reachable[:, None] // 3 ** np.arange(9) % 3 - 1
    rows = np.arange(9).reshape(3, 3)
    lines = np.concatenate([rows, rows.T, [[0, 4, 8], [2, 4, 6]]])
    won = [np.any(np.all(boards[:, lines] == colour, axis=-1), axis=-1) for colour in (0, 1)]
    drawn = np.all(boards >= 0, axis=-1) & ~won[0] & ~won[1]
    assert (won[0].sum(), won[1].sum(), drawn.sum()) == (626, 316, 16)
    assert np.all(table[reachable][won[0] | won[1]] == -1)  # the player to move has lost


@pytest.mark.parametrize(
    ("moves", "value"),
    [
        ([], 0.0),  # perfect play draws
        ([0, 3, 1, 4], 1.0),  # first mover to move, 2 completes the top row
        ([0, 3, 1], -1.0),  # second mover must block 2, then 4 forks 7 and 8
        ([4, 0, 8], 0.0),
        ([0, 3, 1, 4, 2], -1.0),  # finished: the previous player won
        ([0, 1, 4, 2], 1.0),
    ],
)
def test_tictactoe_values(moves, value):
    assert float(players.tictactoe_value(jnp.asarray(_ttt_board(moves)))) == value


def test_tictactoe_value_of_unreachable_board_is_nan():
    three_to_none = jnp.asarray([0, 0, 0, -1, -1, -1, -1, -1, -1])
    second_mover_ahead = jnp.asarray([1, -1, -1, -1, -1, -1, -1, -1, -1])
    assert np.all(np.isnan(players.tictactoe_value(jnp.stack([three_to_none, second_mover_ahead]))))


def test_minimax_moves():
    assert _actions(players.tictactoe_minimax_player, _position(TTT, [0, 3, 1, 4])) == {2}
    assert _actions(players.tictactoe_minimax_player, _position(TTT, [0, 4, 1])) == {2}  # block
    # four winning moves (7 only draws): ties broken at random, all of them played
    state = _position(TTT, [0, 1, 4, 2])
    many_keys = jax.random.split(KEYS[9], 64)
    assert _actions(players.tictactoe_minimax_player, state, many_keys) == {3, 5, 6, 8}


def test_minimax_never_loses():
    against_random = players.play_games(
        TTT, players.tictactoe_minimax_player, players.random_player, 200, KEYS[2]
    )
    summary = players.summarize_outcomes(against_random)
    assert summary["losses"] == 0 and summary["wins"] > 150
    self_play = players.play_games(
        TTT, players.tictactoe_minimax_player, players.tictactoe_minimax_player, 50, KEYS[3]
    )
    assert np.all(np.asarray(self_play) == 0)


# --- Connect Four alpha-beta ------------------------------------------------------------------


def _windows() -> list[list[int]]:
    """Every line of 4 cells on a 6x7 board, found by walking from every cell in 4 directions."""
    found = []
    for row in range(6):
        for col in range(7):
            for d_row, d_col in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(row + k * d_row, col + k * d_col) for k in range(4)]
                if all(0 <= r < 6 and 0 <= c < 7 for r, c in cells):
                    found.append([r * 7 + c for r, c in cells])
    return found


WINDOWS = _windows()
C4_VALUES = jax.jit(players.connect_four_action_values, static_argnums=1)


def _ref_heuristic(board: list[int], colour: int) -> float:
    def side(me: int, other: int) -> float:
        score = 0.0
        for window in WINDOWS:
            cells = [board[i] for i in window]
            if other not in cells:
                score += {2: 2.0, 3: 5.0}.get(cells.count(me), 0.0)
        return score + 3.0 * sum(board[row * 7 + 3] == me for row in range(6))

    return side(colour, 1 - colour) - side(1 - colour, colour)


def _ref_drop(board: list[int], col: int, colour: int) -> list[int]:
    row = max(r for r in range(6) if board[r * 7 + col] == -1)
    child = list(board)
    child[row * 7 + col] = colour
    return child


def _ref_move_value(board: list[int], col: int, colour: int, depth: int, alpha, beta) -> float:
    child = _ref_drop(board, col, colour)
    if any(all(child[i] == colour for i in window) for window in WINDOWS):
        return players.C4_WIN_SCORE * depth
    if -1 not in child:
        return 0.0
    if depth == 1:
        return -_ref_heuristic(child, 1 - colour)
    return -_ref_alphabeta(child, 1 - colour, depth - 1, -beta, -alpha)


def _ref_alphabeta(board: list[int], colour: int, depth: int, alpha=-np.inf, beta=np.inf):
    """Textbook fail-hard alpha-beta negamax, columns in order: the value for `colour`."""
    best = -np.inf
    for col in (c for c in range(7) if board[c] == -1):
        best = max(best, _ref_move_value(board, col, colour, depth, alpha, beta))
        alpha = max(alpha, best)
        if alpha >= beta:
            break
    return best


def test_connect_four_windows_and_heuristic():
    assert len(WINDOWS) == 69
    assert {frozenset(w) for w in WINDOWS} == {frozenset(w) for w in np.asarray(PGX_C4_LINES)}
    board = -np.ones(42, np.int32)
    assert float(players.connect_four_heuristic(jnp.asarray(board), 0)) == 0.0
    board[[37, 38]] = 0  # bottom row, columns 2 and 3: 3 windows hold both, 1 centre piece
    assert float(players.connect_four_heuristic(jnp.asarray(board), 0)) == 3 * 2.0 + 3.0
    assert float(players.connect_four_heuristic(jnp.asarray(board), 1)) == -9.0
    board[39] = 0  # and column 4: 2 windows of 3, 3 windows of 2 (cols 3-4 only once)
    expected = _ref_heuristic(board.tolist(), 0)
    assert expected == 2 * 5 + 2 * 2 + 3
    assert float(players.connect_four_heuristic(jnp.asarray(board), 0)) == expected


def _random_positions(count: int, seed: int) -> list[pgx.State]:
    rng = np.random.default_rng(seed)
    positions: list[pgx.State] = []
    while len(positions) < count:
        state = C4.init(jax.random.PRNGKey(len(positions)))
        for _ in range(rng.integers(4, 16)):
            action = rng.choice(np.flatnonzero(state.legal_action_mask))
            state = _jitted_step(C4)(state, jnp.int32(action))
            if bool(state.terminated):
                break
        if not bool(state.terminated):
            positions.append(state)
    return positions


@pytest.mark.parametrize("depth", [1, 3])
def test_connect_four_values_match_alphabeta(depth):
    positions = [*_random_positions(5, seed=depth), _position(C4, [0, 6, 0, 6, 0])]
    for state in positions:
        board, colour = np.asarray(state._x.board).tolist(), int(state._x.color)
        values = np.asarray(C4_VALUES(state, depth))
        for col in range(7):
            if board[col] == -1:
                ref = _ref_move_value(board, col, colour, depth, -np.inf, np.inf)
                assert values[col] == ref, (board, col)
            else:
                assert values[col] == -np.inf
        assert values.max() == _ref_alphabeta(board, colour, depth)


def test_alphabeta_tactics():
    player = players.connect_four_alphabeta(4)
    assert _actions(player, _position(C4, [0, 6, 0, 6, 0, 5])) == {0}  # win: 4th in column 0
    assert _actions(player, _position(C4, [0, 6, 0, 6, 0])) == {0}  # block column 0
    assert _actions(player, _position(C4, [1, 4, 2, 6, 3])) == {0}  # block the bottom row
    values = C4_VALUES(_position(C4, [0, 6, 0, 6, 0, 5]), 4)
    assert float(values[0]) == 4 * players.C4_WIN_SCORE  # a win now beats a win later


def test_alphabeta_beats_random_and_shallower_search():
    deep = players.connect_four_alphabeta(4)
    summary = players.summarize_outcomes(
        players.play_games(C4, deep, players.random_player, 100, KEYS[4])
    )
    assert summary["wins"] >= 95
    summary = players.summarize_outcomes(
        players.play_games(C4, deep, players.connect_four_alphabeta(1), 20, KEYS[5])
    )
    assert summary["wins"] > summary["losses"]


# --- pure MCTS -----------------------------------------------------------------------------


MCTS_TTT = players.pure_mcts(TTT, 200)
MCTS_C4 = players.pure_mcts(C4, 200)


def test_mcts_tactics():
    keys = KEYS[:8]
    assert _actions(MCTS_TTT, _position(TTT, [0, 3, 1, 4]), keys) == {2}  # win
    assert _actions(MCTS_TTT, _position(TTT, [0, 4, 1]), keys) == {2}  # block
    assert _actions(MCTS_C4, _position(C4, [0, 6, 0, 6, 0, 5]), keys) == {0}  # win
    assert _actions(MCTS_C4, _position(C4, [0, 6, 0, 6, 0]), keys) == {0}  # block the column
    assert _actions(MCTS_C4, _position(C4, [1, 4, 2, 6, 3]), keys) == {0}  # block the row


def test_mcts_tree_signs_and_legality():
    search = jax.jit(players.pure_mcts_search, static_argnums=(0, 3))
    # a win for the player to move: the winning edge is worth exactly +1 to it
    tree = search(TTT, _position(TTT, [0, 3, 1, 4]), KEYS[6], 200).search_tree
    assert float(tree.qvalues(jnp.zeros(1, jnp.int32))[0, 2]) == 1.0
    # every non-blocking move loses to the opponent's reply (discount -1): negative Q-values
    tree = search(TTT, _position(TTT, [0, 4, 1]), KEYS[7], 200).search_tree
    q = np.asarray(tree.qvalues(jnp.zeros(1, jnp.int32))[0])
    assert np.all(q[[3, 5, 6, 7, 8]] < 0) and q[2] > q[[3, 5, 6, 7, 8]].max()
    assert int(tree.node_visits[0, 0]) == 201  # root: its own rollout and 200 simulations
    # below the root too, only legal moves are expanded (mctx masks the root only)
    parents = np.asarray(tree.parents[0])
    moves = np.asarray(tree.action_from_parent[0])
    legal = np.asarray(tree.embeddings.legal_action_mask[0])
    expanded = np.flatnonzero(parents >= 0)
    assert len(expanded) == 200
    assert np.all(legal[parents[expanded], moves[expanded]])


def test_mcts_beats_random():
    summary = players.summarize_outcomes(
        players.play_games(TTT, players.pure_mcts(TTT, 100), players.random_player, 100, KEYS[8])
    )
    assert summary["wins"] + summary["draws"] >= 90
