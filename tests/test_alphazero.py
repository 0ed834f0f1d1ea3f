"""AlphaZero: the search on positions whose answer is known, the two-player value sign, the
self-play targets on hand numbers, learning, resuming after SIGKILL, and the game/agent checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.algos import alphazero
from bellman.envs.games import MIRRORED, GameEnv
from bellman.errors import EnvError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.policy import open_run
from bellman.runners import selfplay
from tests.conftest import kill_after_checkpoint, run_cli

TTT = GameEnv("tic_tac_toe")
SMALL = alphazero.AlphaZeroConfig(channels=8, blocks=1, num_simulations=16, eval_simulations=16)


def position(env: GameEnv, moves: list[int]) -> object:
    """The game after `moves` (cell indices for tic-tac-toe, row-major), one unbatched state."""
    state, play = env.init(jax.random.PRNGKey(0)), jax.jit(env.play)  # Go's moves, eager: seconds
    for move in moves:
        state = play(state, jnp.int32(move))
    return state


def batched(*states: object) -> object:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def untrained(config: alphazero.AlphaZeroConfig, env: GameEnv = TTT) -> alphazero.AlphaZeroState:
    return alphazero.init(jax.random.PRNGKey(3), config, env.spec, 1)


# X: 0 1 .     X to move wins at 2 (O threatens 5 too).
#    O O .
#    . . .
X_WINS = [0, 3, 1, 4]
# X: 0 1 .     O to move must block at 2 (the only move that does not lose).
#    . O .
#    . . .
O_BLOCKS = [0, 4, 1]


@pytest.mark.parametrize("mcts", ["gumbel", "puct"])
def test_search_takes_the_win_and_blocks_the_loss(mcts: str) -> None:
    """An untrained network knows nothing; the game's rules inside the search do: with enough
    simulations the best move is found from both positions."""
    config = dataclasses.replace(SMALL, mcts=mcts, eval_simulations=128)
    state = untrained(config)
    states = batched(position(TTT, X_WINS), position(TTT, O_BLOCKS))
    actions, weights = jax.jit(lambda s, k: alphazero.act(config, TTT, state, s, k, False))(
        states, jax.random.PRNGKey(0)
    )
    assert actions.tolist() == [2, 2]
    assert np.allclose(np.asarray(weights).sum(axis=1), 1.0, atol=1e-5)
    legal = np.asarray(states.legal_action_mask)
    assert (np.asarray(weights)[~legal] == 0).all()  # targets only on legal moves


def test_the_value_sign_from_both_sides() -> None:
    """X to move can win at 2, and O threatens 5. From X's side: Q(2) = +1 (a win, the game
    over); the moves that neither win nor block (6, 7, 8) let O win next, so their Q is negative.
    The same position after X plays 8, from O's side (O to move, one move from a win): its value
    is positive, and Q(5) = +1."""
    config = dataclasses.replace(SMALL, mcts="puct")
    state = untrained(config)
    search = jax.jit(
        lambda s, k: alphazero.search(config, TTT, state.params, s, k, 400, False).search_tree
    )
    x_root = search(batched(position(TTT, X_WINS)), jax.random.PRNGKey(0)).summary()
    q, visits = np.asarray(x_root.qvalues)[0], np.asarray(x_root.visit_counts)[0]
    assert q[2] == pytest.approx(1.0) and visits.argmax() == 2
    tried = [a for a in (6, 7, 8) if visits[a] > 0]
    assert tried and (q[tried] < 0).all(), (q, visits)  # (untried moves have no Q)
    assert float(x_root.value[0]) > 0.5
    o_root = search(batched(position(TTT, [*X_WINS, 8])), jax.random.PRNGKey(0)).summary()
    assert np.asarray(o_root.qvalues)[0, 5] == pytest.approx(1.0)
    assert float(o_root.value[0]) > 0.5


def test_finished_games_reach_the_replay_with_the_outcome_for_each_player() -> None:
    """Hand numbers: two games of a 3-move record, the first ended after 3 moves (player 1
    won), the second still running; the replay ring of 4 starts at slot 2 with 1 stored."""
    e, length, a = 2, 3, 2
    record = selfplay.Record(
        obs=jnp.arange(e * length, dtype=jnp.float32).reshape(e, length, 1),
        legal=jnp.ones((e, length, a), bool),
        policy=jnp.full((e, length, a), 0.5),
        player=jnp.array([[0, 1, 0], [1, 0, 1]], jnp.int32),
        moves=jnp.array([3, 2], jnp.int32),
    )
    replay = selfplay.Replay(
        obs=jnp.full((4, 1), -1.0),
        legal=jnp.zeros((4, a), bool),
        policy=jnp.zeros((4, a)),
        value=jnp.full((4,), 9.0),
        size=jnp.int32(1),
        pointer=jnp.int32(2),
    )
    rewards = jnp.array([[-1.0, 1.0], [0.0, 0.0]])
    ended = jnp.array([True, False])
    out = selfplay.store_finished(replay, record, rewards, ended)
    # positions 0, 1, 2 of game 0 go to slots 2, 3, 0 (the ring wraps); slot 1 is untouched
    assert np.asarray(out.obs)[:, 0].tolist() == [2.0, -1.0, 0.0, 1.0]
    # player 0 moved at positions 0 and 2 (lost: -1), player 1 at position 1 (won: +1)
    assert np.asarray(out.value).tolist() == [-1.0, 9.0, -1.0, 1.0]
    assert int(out.size) == 4 and int(out.pointer) == 1


def test_the_record_holds_every_move_of_a_game_in_order() -> None:
    """One update of self-play with 9-move games: the positions a game's record holds are the
    boards seen by the player to move, move after move, players alternating."""
    config = dataclasses.replace(SMALL, num_envs=2, num_steps=3, gradient_steps=0)
    state = selfplay.init_state(alphazero, config, TTT, 1, jax.random.PRNGKey(0))
    state, metrics = jax.jit(lambda s: selfplay.update(alphazero, config, TTT, s, 0))(state)
    record = state.record
    assert np.asarray(record.moves).tolist() == [3, 3]  # no tic-tac-toe game ends in 3 moves
    assert float(metrics["episodes"]) == 0.0
    players = np.asarray(record.player)[:, :3]
    assert (players[:, 1] == 1 - players[:, 0]).all() and (players[:, 2] == players[:, 0]).all()
    marks = np.asarray(record.obs)[:, :3].sum(axis=(2, 3, 4))
    assert marks.tolist() == [[0, 1, 2], [0, 1, 2]]  # the board before each move


def test_check_errors_name_the_algorithm_and_the_game() -> None:
    result = run_cli("train", "ppo", "--env", "tic_tac_toe", "--steps", "100")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "two-player game" in result.stderr and "alphazero" in result.stderr
    result = run_cli("train", "alphazero", "--env", "CartPole-v1", "--steps", "100")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "single-agent env" in result.stderr
    result = run_cli("train", "alphazero", "--env", "connect_four", "--eval-opponent", "minimax")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "minimax plays tic_tac_toe only" in result.stderr


def test_no_pass_before_keeps_the_search_from_passing_early_unless_it_must() -> None:
    go = GameEnv("go_9x9")
    config = dataclasses.replace(SMALL, no_pass_before=4)
    pass_move = go.pass_move
    early, late = position(go, [0]), position(go, [0, 1, 2, 3])  # moves 1 and 4 of the game
    forced = early.replace(legal_action_mask=jnp.zeros(82, bool).at[pass_move].set(True))
    allowed = np.asarray(alphazero.allowed_moves(config, go, batched(early, late, forced)))
    assert not allowed[0, pass_move]
    assert allowed[0].sum() == np.asarray(early.legal_action_mask).sum() - 1
    assert (allowed[1] == np.asarray(late.legal_action_mask)).all() and allowed[1, pass_move]
    assert allowed[2].tolist() == np.asarray(forced.legal_action_mask).tolist()  # only the pass
    # Gumbel's policy target weighs every move it may play: the pass, unless it is held back
    key, first_move = jax.random.PRNGKey(1), jnp.ones(1, jnp.int32)
    for limit, passes in ((0, True), (4, False)):
        limited = dataclasses.replace(config, no_pass_before=limit)
        state = untrained(limited, go)
        act = jax.jit(lambda s, b, c=limited: alphazero.act(c, go, s, b, key, True, first_move))
        _, weights = act(state, batched(early))
        assert (float(weights[0, pass_move]) > 0) == passes
    with pytest.raises(EnvError, match="no_pass_before applies to"):
        alphazero.check_env(config, TTT.spec)


@pytest.mark.parametrize("game", ["tic_tac_toe", "connect_four", "go_9x9"])
def test_the_mirror_image_of_a_game_is_the_game_of_the_mirrored_moves(game: str) -> None:
    # (go_19x19 shares go_9x9's code path: a point r * W + c, the pass last)
    assert set(MIRRORED) == {"tic_tac_toe", "connect_four", "go_9x9", "go_19x19"}
    env = GameEnv(game)
    width = env.spec.obs_shape[1]
    one_hot, board = np.eye(env.num_actions, dtype=np.float32), jnp.zeros(env.spec.obs_shape)
    mirrored = lambda move: int(np.argmax(env.mirror(board, one_hot[move])[1]))
    play = jax.jit(
        lambda moves: jax.lax.scan(
            lambda s, m: (env.play(s, m), None), env.init(jax.random.PRNGKey(0)), moves
        )[0]
    )
    for moves in ([0, 1, width - 1], [width - 1, 2, 0], [1, width - 2, 0]):
        state = play(jnp.asarray(moves, jnp.int32))
        image = play(jnp.asarray([mirrored(m) for m in moves], jnp.int32))
        obs, legal = env.mirror(state.observation, state.legal_action_mask)
        assert (obs == image.observation).all() and (legal == image.legal_action_mask).all()
        twice = env.mirror(*env.mirror(state.observation, state.legal_action_mask))
        assert (twice[0] == state.observation).all()
        assert (twice[1] == state.legal_action_mask).all()
    assert mirrored(0) == width - 1
    if game.startswith("go"):
        assert mirrored(env.num_actions - 1) == env.num_actions - 1  # the pass
    othello = GameEnv("othello").spec
    with pytest.raises(EnvError, match="mirror=True needs a left-right symmetric game"):
        alphazero.check_env(dataclasses.replace(SMALL, mirror=True), othello)


ARGS = [
    "train", "alphazero", "--env", "tic_tac_toe", "--seeds", "2", "--steps", "2048",
    "--num-envs", "16", "--channels", "8", "--blocks", "1", "--num-simulations", "8",
    "--eval-simulations", "8", "--learning-starts", "64", "--batch-size", "32",
    "--log-every", "16", "--checkpoint-every", "256", "--evals", "0", "--eval-episodes", "4",
    "--mirror", "--quiet",
]  # fmt: skip


def test_resume_after_sigkill_ends_bit_for_bit_where_an_uninterrupted_run_ends(
    tmp_path: Path,
) -> None:
    whole = tmp_path / "whole"
    result = run_cli(*ARGS, "--out", str(whole))
    assert result.returncode == 0, result.stderr
    killed = tmp_path / "killed"
    last = kill_after_checkpoint(ARGS, killed, 32)
    assert 32 <= last < 128, f"killed mid-way, at update {last}"
    resumed = run_cli("train", "alphazero", "--resume", str(killed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a, b = open_run(killed), open_run(whole)
    assert a.update == b.update == 128
    for x, y in zip(jax.tree.leaves(a.algo_state), jax.tree.leaves(b.algo_state), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the whole runner state too: games in progress, records, replay
    update = ckpt.list_checkpoints(killed / "checkpoints")[-1][0]
    assert update == 128
    x = ckpt.read_arrays(ckpt.path_for(killed / "checkpoints", update))
    y = ckpt.read_arrays(ckpt.path_for(whole / "checkpoints", update))
    assert x.keys() == y.keys()
    for name in x:
        for u, v in zip(x[name], y[name], strict=True):
            np.testing.assert_array_equal(u, v)
    summary_k = json.loads((killed / "summary.json").read_text())
    summary_w = json.loads((whole / "summary.json").read_text())
    assert summary_k["final_return_per_seed"] == summary_w["final_return_per_seed"]


def test_alphazero_learns_tic_tac_toe_to_never_lose_against_minimax(tmp_path: Path) -> None:
    """A short run of the tic-tac-toe preset (about 20 s of self-play): its agent, searching,
    draws every game against exact play (100 games, 50 as first player) and beats random play."""
    out = tmp_path / "ttt"
    result = run_cli(
        "train", "alphazero", "--env", "tic_tac_toe", "--steps", "24000", "--evals", "0",
        "--eval-episodes", "100", "--out", str(out), "--quiet", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["final_return_mean"] == 0.0  # the preset evaluates against minimax
    result = run_cli("arena", str(out), "minimax", "--games", "100", "--seed", "7", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["losses"] == 0
    result = run_cli("arena", str(out), "random", "--games", "100", "--json")
    assert result.returncode == 0, result.stderr
    against_random = json.loads(result.stdout)
    assert against_random["losses"] == 0 and against_random["score"] >= 0.85
