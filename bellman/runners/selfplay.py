"""The self-play loop of AlphaZero on a two-player game, as a compiled runner family.

One update, for one seed (`update`):

    for each of num_steps moves, in all num_envs games at once:
        search from every position: move a_t and policy target pi_t    (algo.act)
        record (s_t, legal moves, pi_t, player to move) in the game's record
        play a_t; where a game ended, its outcome z gives each recorded
          position its value target z[player_t], and its positions go to
          the replay; the game starts again
    gradient_steps times: sample positions (each mirrored at random where the
        config asks it), one gradient step                                 (algo.learn)

`CompiledRunner` runs chunks of these updates for every seed in one program, as for the other
families. A game's record holds `max_moves` positions (the game's longest), so a finished game's
positions reach the replay all at once, each with its true outcome; no position is trained on
before its game ends. The episode statistics of training are the games that ended: their length
and the outcome for the player who moved first.

`GameEvaluator` is the game's evaluation: each member plays `episodes` games against a fixed
opponent (`bellman.envs.players`), half of them moving first, the agent searching with
`eval_simulations` and no noise; a game's return is +1, 0 or -1 for the agent. `play_match`
plays any two players so (`bellman arena`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman import config as cfg
from bellman.envs.games import GameEnv
from bellman.runners.common import over_seeds, seed_sharding
from bellman.runners.compiled import CompiledRunner
from bellman.runners.evaluation import JaxEvaluator

EPISODE_STATISTICS = False
"""The games keep their own statistics (the runner does not wrap the env)."""


class Record(struct.PyTreeNode):
    """Each game's positions so far, `[E, max_moves, ...]`, and its number of moves `[E]`."""

    obs: jax.Array
    legal: jax.Array
    policy: jax.Array
    player: jax.Array
    moves: jax.Array


class Replay(struct.PyTreeNode):
    """A ring of positions of finished games with their targets (`algo.Batch`'s fields)."""

    obs: jax.Array
    legal: jax.Array
    policy: jax.Array
    value: jax.Array
    size: jax.Array
    """Positions stored, up to the capacity."""
    pointer: jax.Array
    """Where the next position goes."""


class SelfPlayState(struct.PyTreeNode):
    algo: Any
    games: Any
    """The pgx states of the num_envs games `[E]`."""
    record: Record
    replay: Replay
    key: jax.Array


def init_state(
    algo: Any, config: Any, env: GameEnv, total_updates: int, key: jax.Array
) -> SelfPlayState:
    key, algo_key, game_key = jax.random.split(key, 3)
    games = jax.vmap(env.init)(jax.random.split(game_key, config.num_envs))
    e, length, a = config.num_envs, env.max_moves, env.num_actions
    obs = games.observation
    record = Record(
        obs=jnp.zeros((e, length, *obs.shape[1:]), obs.dtype),
        legal=jnp.zeros((e, length, a), bool),
        policy=jnp.zeros((e, length, a), jnp.float32),
        player=jnp.zeros((e, length), jnp.int32),
        moves=jnp.zeros((e,), jnp.int32),
    )
    n = config.buffer_size
    replay = Replay(
        obs=jnp.zeros((n, *obs.shape[1:]), obs.dtype),
        legal=jnp.zeros((n, a), bool),
        policy=jnp.zeros((n, a), jnp.float32),
        value=jnp.zeros((n,), jnp.float32),
        size=jnp.zeros((), jnp.int32),
        pointer=jnp.zeros((), jnp.int32),
    )
    algo_state = algo.init(algo_key, config, env.spec, total_updates)
    return SelfPlayState(algo_state, games, record, replay, key)


def store_finished(replay: Replay, record: Record, rewards: jax.Array, ended: jax.Array) -> Replay:
    """Put every position of the games that `ended` `[E]` into the replay, with value targets
    z = the game's final `rewards` `[E, 2]` for the position's player to move."""
    e, length = record.player.shape
    value = jnp.take_along_axis(rewards, record.player, axis=1)  # [E, L]
    keep = ended[:, None] & (jnp.arange(length)[None, :] < record.moves[:, None])
    keep = keep.reshape(-1)
    n = replay.value.shape[0]
    offset = jnp.cumsum(keep) - keep  # the rank of each kept position
    index = jnp.where(keep, (replay.pointer + offset) % n, n)  # n: dropped
    put = lambda ring, rows: ring.at[index].set(
        rows.reshape((e * length, *rows.shape[2:])), mode="drop"
    )
    count = keep.sum()
    return replay.replace(
        obs=put(replay.obs, record.obs),
        legal=put(replay.legal, record.legal),
        policy=put(replay.policy, record.policy),
        value=put(replay.value, value),
        size=jnp.minimum(replay.size + count, n),
        pointer=(replay.pointer + count) % n,
    )


def update(
    algo: Any, config: Any, env: GameEnv, state: SelfPlayState, update_id: jax.Array
) -> tuple[SelfPlayState, dict[str, jax.Array]]:
    e = config.num_envs
    rows = jnp.arange(e)

    def move(carry: Any, _: Any) -> tuple[Any, dict[str, jax.Array]]:
        games, record, replay, key = carry
        key, search_key, reset_key = jax.random.split(key, 3)
        actions, policy = algo.act(config, env, state.algo, games, search_key, True, record.moves)
        t = jnp.minimum(record.moves, env.max_moves - 1)
        record = record.replace(
            obs=record.obs.at[rows, t].set(games.observation),
            legal=record.legal.at[rows, t].set(games.legal_action_mask),
            policy=record.policy.at[rows, t].set(policy),
            player=record.player.at[rows, t].set(games.current_player),
            moves=record.moves + 1,
        )
        games = jax.vmap(env.play)(games, actions)
        ended = games.terminated
        replay = jax.lax.cond(
            ended.any(),
            lambda: store_finished(replay, record, games.rewards, ended),
            lambda: replay,
        )
        first = record.player[:, 0]
        outcome = jnp.take_along_axis(games.rewards, first[:, None], axis=1)[:, 0]
        stats = {
            "episodes": ended.sum().astype(jnp.float32),
            "episode_return_sum": jnp.where(ended, outcome, 0.0).sum(),
            "episode_length_sum": jnp.where(ended, record.moves, 0).sum().astype(jnp.float32),
        }
        fresh = jax.vmap(env.init)(jax.random.split(reset_key, e))
        games = jax.tree.map(
            lambda f, g: jnp.where(ended.reshape((e,) + (1,) * (g.ndim - 1)), f, g), fresh, games
        )
        record = record.replace(moves=jnp.where(ended, 0, record.moves))
        return (games, record, replay, key), stats

    carry = (state.games, state.record, state.replay, state.key)
    (games, record, replay, key), stats = jax.lax.scan(move, carry, None, config.num_steps)
    metrics: dict[str, jax.Array] = {name: value.sum() for name, value in stats.items()}

    def learn(carry: Any, _: Any) -> tuple[Any, dict[str, jax.Array]]:
        algo_state, key = carry
        key, sample_key = jax.random.split(key)
        index = jax.random.randint(sample_key, (config.batch_size,), 0, replay.size)
        obs, legal, policy = replay.obs[index], replay.legal[index], replay.policy[index]
        if config.mirror:  # each position or its mirror image, at random
            key, mirror_key = jax.random.split(key)
            flip = jax.random.bernoulli(mirror_key, 0.5, (config.batch_size,))
            flipped_obs, flipped = env.mirror(obs, jnp.stack([legal, policy], axis=1))
            where = lambda x, y: jnp.where(flip.reshape((-1,) + (1,) * (x.ndim - 1)), x, y)
            obs = where(flipped_obs, obs)
            legal = where(flipped[:, 0].astype(bool), legal)
            policy = where(flipped[:, 1], policy)
        batch = algo.Batch(obs=obs, legal=legal, policy=policy, value=replay.value[index])
        algo_state, learned = algo.learn(config, env.spec, algo_state, batch)
        return (algo_state, key), learned

    def learning(algo_state: Any, key: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        (algo_state, _), learned = jax.lax.scan(
            learn, (algo_state, key), None, config.gradient_steps
        )
        return algo_state, jax.tree.map(jnp.mean, learned)

    key, learn_key = jax.random.split(key)
    shapes = jax.eval_shape(learning, state.algo, learn_key)[1]
    skipped = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)  # (metrics 0)
    ready = (replay.size >= max(config.learning_starts, 1)) & (config.gradient_steps > 0)
    algo_state, learned = jax.lax.cond(
        ready, learning, lambda a, k: (a, skipped), state.algo, learn_key
    )
    metrics.update(learned)
    metrics["replay_size"] = replay.size.astype(jnp.float32)
    new_state = SelfPlayState(algo_state, games, record, replay, key)
    return new_state, metrics


def CompiledSelfPlay(
    algo: Any,
    configs: Sequence[Any],
    env: GameEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
) -> CompiledRunner:
    """The compiled runner of the self-play loop, for `seeds` seeds of each config."""
    algo.check_game(env)
    return CompiledRunner(
        sys.modules[__name__],  # type: ignore[arg-type]
        algo,
        configs,
        env,
        seeds,
        seed,
        total_updates,
        chunk_updates,
        first_seed,
    )


# ----- evaluation against an opponent -----


def opponent_player(name: str, env: GameEnv, simulations: int) -> BatchedPlayer:
    """The built-in player `name` (`bellman.envs.players`) for `env`'s game."""
    from bellman.envs import players  # (it imports pgx, which starts JAX: when used)

    if name == "minimax":
        return batched(players.tictactoe_minimax_player)
    if name == "alphabeta":
        return batched(players.connect_four_alphabeta(4))
    if name == "mcts":
        return batched(players.pure_mcts(env.game, simulations))
    return batched(players.random_player)


BatchedPlayer = Callable[[Any, jax.Array], jax.Array]
"""`act(states, key) -> moves`: a player's moves in the game positions `states` `[B]`."""


def batched(player: Callable[[Any, jax.Array], jax.Array]) -> BatchedPlayer:
    """A player of one position (`bellman.envs.players`) as a `BatchedPlayer`."""
    return lambda states, key: jax.vmap(player)(
        states, jax.random.split(key, states.current_player.shape[0])
    )


def agent_player(algo: Any, config: Any, env: GameEnv, algo_state: Any) -> BatchedPlayer:
    """The trained agent: its search with `eval_simulations`, no noise, the best move."""
    return lambda states, key: algo.act(config, env, algo_state, states, key, False)[0]


def play_match(
    env: GameEnv, a: BatchedPlayer, b: BatchedPlayer, key: jax.Array, games: int
) -> tuple[jax.Array, jax.Array]:
    """Outcomes for player `a` `[games]` (+1, 0, -1) and the games' lengths, `a` moving first in
    the even-numbered games and `b` in the odd-numbered ones; all games side by side until every
    one has ended."""
    key, init_key = jax.random.split(key)
    states = jax.vmap(env.init)(jax.random.split(init_key, games))
    first = jnp.arange(games) % 2 == 0
    a_id = jnp.where(first, states.current_player, 1 - states.current_player)
    zeros = jnp.zeros((games,), jnp.float32)
    carry = (states, key, zeros, zeros)

    def running(carry: Any) -> jax.Array:
        return ~carry[0].terminated.all()

    def step(carry: Any) -> Any:
        states, key, outcome, moves = carry
        key, a_key, b_key = jax.random.split(key, 3)
        action = jnp.where(states.current_player == a_id, a(states, a_key), b(states, b_key))
        live = ~states.terminated
        states = jax.vmap(env.play)(states, action)
        # (pgx zeroes the rewards of a finished game that is stepped again: count them once)
        reward = jnp.take_along_axis(states.rewards, a_id[:, None], axis=1)[:, 0]
        return states, key, outcome + jnp.where(live, reward, 0.0), moves + live

    _, _, outcome, moves = jax.lax.while_loop(running, step, carry)
    return outcome, moves


class GameEvaluator(JaxEvaluator):
    """The agent against the config's `eval_opponent` (`play_match`) for all members at once,
    compiled ahead of time: a `JaxEvaluator` (its compiling and calling) whose program plays
    matches; it returns outcomes and lengths `[members, episodes]`."""

    def __init__(  # (not JaxEvaluator's: another program)
        self, algo: Any, configs: Sequence[Any], env: GameEnv, episodes: int, seeds: int
    ):
        self.episodes, self.seeds = episodes, len(configs) * seeds
        static = cfg.static_part(configs[0])
        opponent = opponent_player(static.eval_opponent, env, static.eval_opponent_simulations)
        self._description = [
            "evaluate-game",
            algo.__name__,
            repr(static),
            env.cache_key,
            f"members={self.seeds} games={episodes}",
        ]
        self.sharding, _ = seed_sharding(self.seeds)
        self.values = jax.device_put(cfg.traced_values(configs, seeds), self.sharding)

        def fn(algo_state: Any, values: dict[str, jax.Array], key: jax.Array) -> Any:
            agent = agent_player(algo, cfg.with_values(static, values), env, algo_state)
            return play_match(env, agent, opponent, key, episodes)

        # each device plays its own members' games (`shard_map`, as the runner's chunks: the
        # partitioner splits a vmapped convolution's feature groups wrongly across devices)
        mesh, spec = self.sharding.mesh, self.sharding.spec
        local = over_seeds(fn, self.seeds // mesh.size, (0, 0, 0))
        self._fn = jax.jit(
            jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False),
            in_shardings=self.sharding,
            out_shardings=self.sharding,
        )
        self._compiled: Any = None
