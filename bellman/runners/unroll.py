"""MuZero's loop as a compiled runner family: search -> act -> store trajectories -> learn from
K-step unrolls.

One update, for one seed (`update`):

    for each of num_steps steps, in all num_envs envs at once:
        search from o_t through the learned model: a_t, pi_t, nu_t          (algo.plan)
        step the env; keep (o_t, legal_t, a_t, u_{t+1}, end flags, pi_t, nu_t)
          in the env's ring of trajectories
    gradient_steps times (once learning_starts steps are taken):
        sample positions t; gather steps t..t+K+n of their trajectories      (`sample`)
        [reanalyse: search again at a share of them with the current network] (algo.plan)
        [fresh_values: the bootstraps nu_{t+k+n} from the current network]   (`fresh_values`)
        targets for k = 0..K: z_{t+k}, u_{t+k}, pi_{t+k}                     (`targets`)
        one gradient step                                                    (algo.learn)

A position is sampled only when its K + n following steps are stored, so its targets are whole
(a ring per env, `Trajectories`). Episodes end in three ways, and the targets respect each
(`targets`): a terminal state (past it every value and reward is 0, and known); a time limit
(the n-step sum stops there and bootstraps from the value of the last observation, `final_value`;
past it nothing is known and the steps are masked); a two-player game's end (a terminal state,
with the discount -1 and n as long as the game, so that z is the game's outcome for the player
to move).

The envs are JAX envs (gymnax, MinAtar, bellman's own) or a two-player game's self-play view
(`bellman.envs.games.GameEnv`), whose legal moves mask the root of each search.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman.envs.core import EpisodeStatistics, JaxEnv
from bellman.envs.games import GameEnv
from bellman.envs.spaces import Discrete
from bellman.runners.common import EpisodeTotals
from bellman.runners.compiled import CompiledRunner

EPISODE_STATISTICS = True
"""The runner counts episodes with `EpisodeStatistics`."""


class Trajectories(struct.PyTreeNode):
    """Each env's ring of its latest steps, `[E, L, ...]`; step t of env e is at t mod L."""

    obs: jax.Array
    """o_t."""
    legal: jax.Array
    """`[E, L, A]` the legal actions at o_t."""
    action: jax.Array
    """a_t."""
    reward: jax.Array
    """u_{t+1}, the reward of a_t."""
    terminated: jax.Array
    """a_t reached a terminal state."""
    truncated: jax.Array
    """a_t reached the time limit (the episode was cut)."""
    policy: jax.Array
    """`[E, L, A]` pi_t, the search's policy."""
    value: jax.Array
    """nu_t, the search's value of o_t."""
    final_value: jax.Array
    """The network's value of the observation a_t reached, where the episode was cut there."""
    count: jax.Array
    """Steps stored per env so far."""


class UnrollState(struct.PyTreeNode):
    algo: Any
    env_state: Any
    """`[E]` env states with running episode statistics."""
    obs: jax.Array
    trajectories: Trajectories
    key: jax.Array


def game_of(env: JaxEnv) -> GameEnv | None:
    """The two-player game under the episode statistics, or None."""
    inner = env.env if isinstance(env, EpisodeStatistics) else env
    return inner if isinstance(inner, GameEnv) else None


def td_steps(config: Any, env: JaxEnv) -> int:
    """n: the config's, or a game's longest length (its value target is its outcome)."""
    game = game_of(env)
    return game.max_moves if game is not None else int(config.td_steps)


def ring_length(config: Any) -> int:
    return int(config.buffer_size // config.num_envs)


def legal_actions(env: JaxEnv, env_state: Any, num_envs: int) -> jax.Array:
    """`[E, A]`: a game's legal moves (pgx's mask); every action of a single-agent env."""
    if game_of(env) is not None:
        return env_state.env_state.legal_action_mask
    space = env.spec.action_space
    assert isinstance(space, Discrete)
    return jnp.ones((num_envs, space.n), bool)


def init_state(algo: Any, config: Any, env: JaxEnv, total_updates: int, key: jax.Array) -> Any:
    key, algo_key, reset_key = jax.random.split(key, 3)
    algo_state = algo.init(algo_key, config, env.spec, total_updates)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(reset_key, config.num_envs))
    e, length = config.num_envs, ring_length(config)
    a = legal_actions(env, env_state, e).shape[-1]
    zeros = lambda dtype, *shape: jnp.zeros((e, length, *shape), dtype)
    trajectories = Trajectories(
        obs=zeros(ts.obs.dtype, *ts.obs.shape[1:]),
        legal=zeros(bool, a),
        action=zeros(jnp.int32),
        reward=zeros(jnp.float32),
        terminated=zeros(bool),
        truncated=zeros(bool),
        policy=zeros(jnp.float32, a),
        value=zeros(jnp.float32),
        final_value=zeros(jnp.float32),
        count=jnp.zeros((), jnp.int32),
    )
    return UnrollState(algo_state, env_state, ts.obs, trajectories, key)


def collect(algo: Any, config: Any, env: JaxEnv, state: UnrollState) -> tuple[Any, Any]:
    """num_steps steps of every env, each action the search's, each step stored."""
    e, two_player = config.num_envs, game_of(env) is not None
    rows = jnp.arange(e)

    def env_step(state: UnrollState, key: jax.Array) -> tuple[UnrollState, Any]:
        plan_key, step_key, random_key = jax.random.split(key, 3)
        legal = legal_actions(env, state.env_state, e)
        out = algo.plan(config, env.spec, state.algo, state.obs, legal, plan_key, True, two_player)
        action = out.action
        if two_player and config.random_opening_moves > 0:
            uniform = jax.random.categorical(random_key, jnp.where(legal, 0.0, -jnp.inf), axis=-1)
            opening = state.env_state.episode_length < config.random_opening_moves
            action = jnp.where(opening, uniform, action)
        env_state, ts = jax.vmap(env.step)(jax.random.split(step_key, e), state.env_state, action)
        if two_player:
            final_value = jnp.zeros((e,), jnp.float32)
        else:
            final_value = algo.value(config, env.spec, state.algo, ts.final_obs)
        tr = state.trajectories
        slot = tr.count % tr.action.shape[1]
        put = lambda ring, x: ring.at[rows, slot].set(x)
        tr = tr.replace(
            obs=put(tr.obs, state.obs),
            legal=put(tr.legal, legal),
            action=put(tr.action, action),
            reward=put(tr.reward, ts.reward),
            terminated=put(tr.terminated, ts.terminated),
            truncated=put(tr.truncated, ts.truncated & ~ts.terminated),
            policy=put(tr.policy, out.policy),
            value=put(tr.value, out.value),
            final_value=put(tr.final_value, final_value),
            count=tr.count + 1,
        )
        state = state.replace(env_state=env_state, obs=ts.obs, trajectories=tr)
        return state, (EpisodeTotals.of_step(ts.done, ts.info), out.value.mean())

    key, collect_key = jax.random.split(state.key)
    keys = jax.random.split(collect_key, config.num_steps)
    state, (totals, root_value) = jax.lax.scan(env_step, state.replace(key=key), keys)
    return state, (jax.tree.map(jnp.sum, totals), root_value.mean())


class Window(struct.PyTreeNode):
    """Steps t..t+K+n of sampled positions' trajectories, `[B, W, ...]` (W = K + n + 1)."""

    obs: jax.Array
    legal: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    policy: jax.Array
    value: jax.Array
    final_value: jax.Array


def sample(trajectories: Trajectories, key: jax.Array, batch: int, width: int) -> Window:
    """`batch` positions uniformly among those whose next `width - 1` steps are stored (and not
    yet overwritten), with those steps."""
    e, length = trajectories.action.shape
    count = trajectories.count
    env_key, t_key = jax.random.split(key)
    env = jax.random.randint(env_key, (batch,), 0, e)
    low = jnp.maximum(count - length, 0)
    t = jax.random.randint(t_key, (batch,), low, count - width + 1)
    index = (t[:, None] + jnp.arange(width)) % length
    pick = lambda x: x[env[:, None], index]
    fields = {
        name: pick(getattr(trajectories, name))
        for name in Window.__dataclass_fields__  # type: ignore[attr-defined]
    }
    return Window(**fields)


def powers(discount: jax.Array | float, n: int) -> jax.Array:
    """`[n + 1]`: gamma^0 .. gamma^n (products, so that gamma = -1 alternates exactly)."""
    return jnp.cumprod(jnp.concatenate([jnp.ones(1), jnp.full(n, discount, jnp.float32)]))


def value_targets(w: Window, discount: jax.Array | float, k_steps: int, n: int) -> jax.Array:
    """`[K + 1]`: z for steps 0..K of one window: the n-step return, stopped where the episode
    ends (a terminal state: no bootstrap; a time limit: the last observation's value)."""
    gamma = powers(discount, n)

    def z(k: jax.Array) -> jax.Array:
        reward = jax.lax.dynamic_slice(w.reward, (k,), (n,))
        cut = jax.lax.dynamic_slice(w.truncated, (k,), (n,))
        done = jax.lax.dynamic_slice(w.terminated, (k,), (n,)) | cut
        alive = (jnp.cumsum(done) - done) == 0  # transitions of step k's episode
        ret = jnp.sum(jnp.where(alive, gamma[:n] * reward, 0.0))
        m = jnp.argmax(done)  # the transition that ends it, if any
        final = jnp.where(cut[m], gamma[m + 1] * w.final_value[k + m], 0.0)
        return ret + jnp.where(done.any(), final, gamma[n] * w.value[k + n])

    return jax.vmap(z)(jnp.arange(k_steps + 1))


def targets(w: Window, discount: jax.Array | float, k_steps: int, n: int) -> dict[str, jax.Array]:
    """The targets and masks of steps 0..K of one window (`algo.Unroll`'s fields)."""
    done = (w.terminated | w.truncated)[:k_steps]
    past = jnp.concatenate([jnp.zeros(1, bool), jnp.cumsum(done) > 0])  # [K+1]: after the end
    cut = done.any() & w.truncated[jnp.argmax(done)]  # the episode ended by a time limit
    known = jnp.where(past, ~cut, True)  # past a terminal state: zeros, and known
    z = value_targets(w, discount, k_steps, n)
    reward = jnp.where(past[:k_steps], 0.0, w.reward[:k_steps])
    return {
        "actions": w.action[:k_steps],
        "values": jnp.where(past, 0.0, z),
        "rewards": jnp.concatenate([jnp.zeros(1), reward]),
        "policies": w.policy[: k_steps + 1],
        "value_mask": known.astype(jnp.float32),
        "reward_mask": jnp.concatenate([jnp.zeros(1), known[:k_steps]]).astype(jnp.float32),
        "policy_mask": (~past).astype(jnp.float32),
    }


def reanalysed(
    algo: Any, config: Any, env: JaxEnv, algo_state: Any, w: Window, key: jax.Array
) -> Window:
    """The window with the first `reanalyse` share of its rows searched again by the current
    network: their policies and bootstrap values are fresh (MuZero Reanalyze)."""
    rows = round(config.reanalyse * w.action.shape[0])
    if rows == 0:
        return w
    width = w.action.shape[1]
    flat = lambda x: x[:rows].reshape((rows * width, *x.shape[2:]))
    out = algo.plan(
        config,
        env.spec,
        algo_state,
        flat(w.obs),
        flat(w.legal),
        key,
        False,
        game_of(env) is not None,
        config.num_simulations,
    )
    fresh = lambda old, new: old.at[:rows].set(new.reshape(old[:rows].shape))
    return w.replace(policy=fresh(w.policy, out.policy), value=fresh(w.value, out.value))


def fresh_values(algo: Any, config: Any, env: JaxEnv, algo_state: Any, w: Window, n: int) -> Window:
    """The window with the bootstrap values nu_{t+k+n} (k = 0..K) replaced by the current
    network's v = f(h(o)), without search: targets that follow the network as it learns, not the
    value the search had when it acted, perhaps many updates ago."""
    b, width = w.action.shape
    later = w.obs[:, n:]
    v = algo.value(config, env.spec, algo_state, later.reshape((-1, *later.shape[2:])))
    return w.replace(value=w.value.at[:, n:].set(v.reshape(b, width - n)))


def learn_phase(
    algo: Any, config: Any, env: JaxEnv, state: UnrollState, steps: jax.Array
) -> tuple[UnrollState, dict[str, jax.Array]]:
    """`steps` gradient steps on sampled unrolls; the metrics averaged over them (0 if none).
    A loop of a variable count rather than a branch (see `runners.offpolicy.learn_phase`)."""
    k_steps, n = config.unroll_steps, td_steps(config, env)
    discount = -1.0 if game_of(env) is not None else config.discount

    def batch_of(algo_state: Any, key: jax.Array) -> Any:
        sample_key, reanalyse_key = jax.random.split(key)
        w = sample(state.trajectories, sample_key, config.batch_size, k_steps + n + 1)
        w = reanalysed(algo, config, env, algo_state, w, reanalyse_key)
        if config.fresh_values and game_of(env) is None:
            w = fresh_values(algo, config, env, algo_state, w, n)
        fields = jax.vmap(lambda row: targets(row, discount, k_steps, n))(w)
        return algo.Unroll(obs=w.obs[:, 0], next_obs=w.obs[:, 1 : k_steps + 1], **fields)

    key, loop_key = jax.random.split(state.key)
    shapes = jax.eval_shape(
        lambda a: algo.learn(config, env.spec, a, batch_of(a, loop_key))[1], state.algo
    )
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), shapes)

    def step(i: jax.Array, carry: Any) -> Any:
        algo_state, total = carry
        batch = batch_of(algo_state, jax.random.fold_in(loop_key, i))
        algo_state, metrics = algo.learn(config, env.spec, algo_state, batch)
        return algo_state, jax.tree.map(jnp.add, total, metrics)

    algo_state, total = jax.lax.fori_loop(0, steps, step, (state.algo, zeros))
    mean = jax.tree.map(lambda t: t / jnp.maximum(steps, 1), total)
    return state.replace(algo=algo_state, key=key), mean


def update(
    algo: Any, config: Any, env: JaxEnv, state: UnrollState, update_id: jax.Array
) -> tuple[UnrollState, dict[str, jax.Array]]:
    """Update `update_id`: num_steps steps of every env, then the learning phase once
    learning_starts steps are taken and a whole window is stored. The step count is the same for
    every seed (a function of `update_id`), so the loop's length is not batched over seeds."""
    state, (totals, root_value) = collect(algo, config, env, state)
    stored = (update_id + 1) * config.num_steps  # per env
    width = config.unroll_steps + td_steps(config, env) + 1
    ready = (stored >= width) & (stored * config.num_envs >= config.learning_starts)
    steps = jnp.where(ready, config.gradient_steps, 0)
    state, metrics = learn_phase(algo, config, env, state, steps)
    metrics = {
        **metrics,
        "root_value": root_value,
        "trajectory_steps": jnp.minimum(stored, ring_length(config)).astype(jnp.float32)
        * config.num_envs,
        "episodes": totals.count,
        "episode_return_sum": totals.return_sum,
        "episode_length_sum": totals.length_sum,
    }
    return state, metrics


def CompiledUnroll(
    algo: Any,
    configs: Sequence[Any],
    env: JaxEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
) -> CompiledRunner:
    """The compiled runner of MuZero's loop, for `seeds` seeds of each config."""
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
