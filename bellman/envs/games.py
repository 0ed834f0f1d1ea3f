"""Two-player board games from pgx (Koyamada et al., 2023), for AlphaZero and MuZero.

A game is not a single-agent env: two players alternate, and each move's reward belongs to the
player who made it. `GameEnv` keeps the pgx game (`game`), whose `init` and `step` the search
algorithms use as their model of the game, and also offers the JAX env protocol as self-play
seen by the player to move: `obs` is the board from the view of whoever moves next, and `reward`
is the reward of the player who just moved (+1 for a winning move, -1 for a losing one, 0
otherwise), so the same policy plays both sides. The single-agent algorithms refuse a game
(`check_single_agent`): what they would learn is neither player's policy.

Every game ends (pgx's own limits: Go after 2 x board points moves, chess after 512, ...);
`MAX_MOVES` bounds a game's length, which sizes the self-play runner's record of each game.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from bellman.envs.core import TimeStep
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.errors import EnvError

if TYPE_CHECKING:
    import pgx

MAX_MOVES: dict[str, int] = {
    "tic_tac_toe": 9,
    "connect_four": 42,
    "othello": 128,
    "hex": 122,
    "go_9x9": 162,
    "go_19x19": 722,
    "animal_shogi": 256,
    "gardner_chess": 256,
    "chess": 512,
}
"""pgx's deterministic two-player games with perfect information, and the most moves a game
lasts (its board size for tic-tac-toe, Connect Four and Hex; pgx's termination limits for Go and
the chess variants; Othello's 60 placements with passes, bounded)."""

GAMES = tuple(MAX_MOVES)

MIRRORED = ("tic_tac_toe", "connect_four", "go_9x9", "go_19x19")
"""The games whose rules are unchanged by reflecting the board left to right, so that a
position and its mirror image have the same value and mirrored move probabilities (AlphaGo
Zero's data augmentation uses the eight symmetries of Go's board; this one of them holds for
Connect Four too). Othello's opening position and Hex's board are not left-right symmetric; the
chess variants' castling is not."""


PASSING = ("go_9x9", "go_19x19")
"""The games whose players may pass at any move: pgx's last action is the pass (Go: a move on
each point, then the pass). Othello's pass is legal only when no other move is."""


class GameEnv:
    """A pgx two-player game as a bellman env; see the module docstring."""

    players = 2

    def __init__(self, game_id: str):
        if game_id not in MAX_MOVES:
            raise EnvError(f"unknown game '{game_id}'; bellman plays {', '.join(GAMES)}")
        import pgx  # (imported when used: pgx starts JAX, which must see bellman's XLA flags)

        self.id = game_id
        self.game: pgx.Env = pgx.make(game_id)  # type: ignore[arg-type]
        self.max_moves = MAX_MOVES[game_id]
        self.num_actions = int(self.game.num_actions)
        state = jax.eval_shape(self.game.init, jax.random.PRNGKey(0))
        self.spec = EnvSpec(
            id=game_id,
            obs_shape=tuple(state.observation.shape),
            obs_dtype=str(state.observation.dtype),
            action_space=Discrete(self.num_actions),
            max_episode_steps=self.max_moves,
        )
        self.cache_key = f"pgx:{game_id}:{self.game.version}:pgx-{pgx.__version__}"

    @property
    def pass_move(self) -> int:
        """The pass, in the games that have one at every move (`PASSING`)."""
        assert self.id in PASSING, f"{self.id} has no pass move"
        return self.num_actions - 1

    # ----- symmetry -----
    @property
    def mirrored(self) -> bool:
        """The game is left-right symmetric (`MIRRORED`): `mirror` applies."""
        return self.id in MIRRORED

    def mirror(self, obs: jax.Array, per_action: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The positions `obs` `[..., H, W, C]` reflected left to right, and the move arrays
        `per_action` `[..., A]` (legal moves, policies) reordered to the mirrored moves.

        A move is a column (Connect Four) or a point r * W + c (tic-tac-toe, Go, whose last move
        is the pass, which stays); its mirror is the column or point W - 1 - c.
        """
        assert self.mirrored, f"{self.id} is not left-right symmetric"
        width = self.spec.obs_shape[1]
        if self.id == "connect_four":
            moves = width - 1 - jnp.arange(width)
        else:
            point = jnp.arange(self.spec.obs_shape[0] * width)
            moves = point - point % width + (width - 1 - point % width)
            if self.num_actions > moves.size:  # the pass
                moves = jnp.append(moves, jnp.arange(moves.size, self.num_actions))
        return jnp.flip(obs, axis=-2), per_action[..., moves]

    # ----- the game, as the search algorithms use it -----
    def init(self, key: jax.Array) -> pgx.State:
        """A new game (pgx picks at random which player id moves first)."""
        return self.game.init(key)

    def play(self, state: pgx.State, action: jax.Array) -> pgx.State:
        """The game after the player to move plays `action` (a finished game stays as it is).

        A game still running after `max_moves` moves is ended as a draw (no pgx game lasts that
        long: `MAX_MOVES` is a bound).
        """
        state = self.game.step(state, action)
        cut = ~state.terminated & (state._step_count >= self.max_moves)
        return state.replace(  # type: ignore[attr-defined]
            terminated=state.terminated | cut,
            rewards=jnp.where(cut, 0.0, state.rewards),
        )

    # ----- the JAX env protocol: self-play by one policy -----
    def reset(self, key: jax.Array) -> tuple[pgx.State, TimeStep]:
        state = self.init(key)
        zero = jnp.zeros((), jnp.float32)
        false = jnp.zeros((), bool)
        obs = state.observation
        return state, TimeStep(obs, zero, false, false, obs, {})

    def step(
        self, key: jax.Array, state: pgx.State, action: jax.Array
    ) -> tuple[pgx.State, TimeStep]:
        mover = state.current_player
        state = self.play(state, action)
        reward = state.rewards[mover]
        ts = TimeStep(
            state.observation, reward, state.terminated, jnp.zeros((), bool), state.observation, {}
        )
        fresh, reset_ts = self.reset(key)
        done = state.terminated
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), fresh, state)
        return state, ts.replace(obs=jnp.where(done, reset_ts.obs, ts.obs))


def is_game(env: Any) -> bool:
    """The env is a two-player game (a `GameEnv`)."""
    return isinstance(env, GameEnv)


def check_single_agent(algo: str, env: Any) -> None:
    """EnvError for a single-agent algorithm asked to train on a two-player game."""
    if is_game(env):
        raise EnvError(
            f"{algo} learns a single agent's policy, and {env.id} is a two-player game: train "
            f"alphazero on it (bellman train alphazero --env {env.id})"
        )
