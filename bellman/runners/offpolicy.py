"""The off-policy loop, compiled: act -> store -> sample -> learn, env and agent in one XLA program.

One update of the loop (the Cambridge lecture's training loop, with the static dataset replaced by
an environment):

    for train_frequency steps of every env:
        a ~ pi_E(s)  (the algorithm's exploration policy)                      -> `collect`
        s', r, terminated, truncated = env.step(a); store the transition in D   -> `collect`
    once enough steps are stored (learning_starts), gradient_steps times:
        sample a minibatch from D; learn from it                               -> `learn_phase`

`init_state` and `update` are pure functions of one seed's `RunnerState`, driven chunk after chunk
for every seed at once by `runners.compiled.CompiledRunner` (`CompiledOffPolicy` below). The
host runner (`runners.offpolicy_host`) calls `learn_phase` too. The algorithm is a module of the
off-policy family (`contracts.OffPolicyAlgorithm`); its config is a `contracts.ReplayLoop`, whose
fields are the loop's settings.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman import buffers
from bellman.contracts import OffPolicyAlgorithm, ReplayLoop
from bellman.envs.core import JaxEnv
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.runners.common import EpisodeTotals, env_action
from bellman.runners.compiled import CompiledRunner

EPISODE_STATISTICS = True
"""The runner counts episodes with `EpisodeStatistics`."""


class RunnerState(struct.PyTreeNode):
    """Everything one seed's training needs to continue exactly."""

    algo: Any
    """The algorithm's state: parameters, target parameters, optimiser."""
    buffer: buffers.ReplayBuffer
    """The replay memory D."""
    env_state: Any
    """`[E]` env states with running episode statistics (None on the host backend)."""
    obs: jax.Array
    """`[E, *obs_shape]` observations to act on next."""
    key: jax.Array
    env_steps: jax.Array
    """`[]` env steps taken so far, summed over the envs."""
    noise: Any = None
    """The exploration noise's state, `[E, ...]`, for an algorithm that declares `NOISE` (else
    None)."""
    total_steps: int = struct.field(pytree_node=False, default=0)
    """Env steps of the whole run per seed: the horizon of prioritised replay's beta schedule
    (and of the exploration schedule the runner logs)."""


def action_example(spec: EnvSpec) -> jax.Array:
    space = spec.action_space
    if isinstance(space, Discrete):
        return jnp.zeros((), jnp.int32)
    return jnp.zeros(space.shape, jnp.float32)


def empty_buffer(config: ReplayLoop, spec: EnvSpec, obs: jax.Array) -> buffers.ReplayBuffer:
    """D with room for `config.buffer_size` transitions, holding the first observations `obs`."""
    frame_stack = spec.frame_stack if len(spec.obs_shape) == 3 else 1
    buffer = buffers.init(
        config.buffer_size, config.num_envs, obs[0], action_example(spec), frame_stack
    )
    return buffers.start(buffer, obs)


def init_noise(algo: OffPolicyAlgorithm, config: ReplayLoop, spec: EnvSpec) -> Any:
    """The exploration noise's first state, for an algorithm that keeps one (else None)."""
    return None if algo.NOISE is None else algo.NOISE.init(config, spec, config.num_envs)


def explore(
    algo: OffPolicyAlgorithm,
    config: ReplayLoop,
    spec: EnvSpec,
    state: RunnerState,
    key: jax.Array,
) -> tuple[jax.Array, Any]:
    """The exploration policy's actions on `state.obs`, and the noise state after them."""
    if algo.NOISE is None:
        return algo.act(config, spec, state.algo, state.obs, key, state.env_steps), None
    return algo.NOISE.act(config, spec, state.algo, state.obs, key, state.env_steps, state.noise)


def restart_noise(noise: Any, done: jax.Array) -> Any:
    """The noise state with the envs whose episode ended `[E]` back at zero."""
    reset = lambda n: jnp.where(done.reshape(done.shape + (1,) * (n.ndim - 1)), 0.0, n)
    return jax.tree.map(reset, noise)


def init_state(
    algo: OffPolicyAlgorithm, config: ReplayLoop, env: JaxEnv, total_updates: int, key: jax.Array
) -> RunnerState:
    """Fresh networks, an empty replay memory and `config.num_envs` freshly reset envs."""
    key, algo_key, reset_key = jax.random.split(key, 3)
    algo_state = algo.init(algo_key, config, env.spec, total_updates)
    env_state, timestep = jax.vmap(env.reset)(jax.random.split(reset_key, config.num_envs))
    buffer = empty_buffer(config, env.spec, timestep.obs)
    zero = jnp.zeros((), jnp.int32)
    return RunnerState(
        algo=algo_state,
        buffer=buffer,
        env_state=env_state,
        obs=timestep.obs,
        key=key,
        env_steps=zero,
        noise=init_noise(algo, config, env.spec),
        total_steps=total_updates * config.steps_per_update,
    )


def collect(
    algo: OffPolicyAlgorithm, config: ReplayLoop, env: JaxEnv, state: RunnerState
) -> tuple[RunnerState, EpisodeTotals]:
    """`train_frequency` steps of every env with the exploration policy, each stored in D."""

    def env_step(state: RunnerState, keys: jax.Array) -> tuple[RunnerState, EpisodeTotals]:
        act_key, step_keys = keys[0], keys[1:]
        action, noise = explore(algo, config, env.spec, state, act_key)
        env_state, ts = jax.vmap(env.step)(step_keys, state.env_state, env_action(env.spec, action))
        buffer = buffers.add(
            state.buffer, action, ts.reward, ts.terminated, ts.truncated, ts.final_obs, ts.obs
        )
        state = state.replace(
            buffer=buffer,
            env_state=env_state,
            obs=ts.obs,
            env_steps=state.env_steps + config.num_envs,
            noise=restart_noise(noise, ts.done),
        )
        return state, EpisodeTotals.of_step(ts.done, ts.info)

    key, collect_key = jax.random.split(state.key)
    keys = jax.random.split(collect_key, (config.train_frequency, 1 + config.num_envs))
    state, totals = jax.lax.scan(env_step, state.replace(key=key), keys)
    return state, jax.tree.map(jnp.sum, totals)


def beta(config: ReplayLoop, state: RunnerState) -> jax.Array:
    """Prioritised replay's importance exponent, annealed linearly from `priority_beta` to 1."""
    fraction = jnp.minimum(state.env_steps / max(1, state.total_steps), 1.0)
    return config.priority_beta + fraction * (1.0 - config.priority_beta)


def _sample(
    config: ReplayLoop, state: RunnerState, key: jax.Array, shape: tuple[int, ...]
) -> buffers.Batch:
    return buffers.sample(
        state.buffer,
        key,
        shape,
        n_step=config.n_step,
        gamma=config.gamma,
        alpha=config.priority_alpha if config.prioritized else None,
        beta=beta(config, state),
        reward_clip=config.clip_rewards or None,
    )


def learn_phase(
    algo: OffPolicyAlgorithm,
    config: ReplayLoop,
    spec: EnvSpec,
    state: RunnerState,
    steps: jax.Array | int | None = None,
) -> tuple[RunnerState, dict[str, jax.Array]]:
    """`steps` gradient steps (`config.gradient_steps` unless given), each on a minibatch
    sampled from D; with prioritised replay, the sampled transitions' priorities become their
    new |TD errors|. Returns the metrics averaged over the steps (NaN where no step measured
    one: TD3's actor loss between delayed actor steps, or no step at all).

    One loop whose number of steps may be 0 (`learn_if_ready` before learning starts), rather
    than a branch: the replay memory goes through the loop, so the next update's writes follow
    its reads and XLA never copies the rings to keep their old contents for the reads (around a
    branch, it copied the episode flags of the whole ring every update)."""
    steps = config.gradient_steps if steps is None else steps
    key, loop_key = jax.random.split(state.key)
    learn_key = lambda i: jax.random.fold_in(loop_key, i)
    metrics_shape = jax.eval_shape(
        lambda s: algo.learn(
            config, spec, s.algo, _sample(config, s, key, (config.batch_size,)), key
        )[1],
        state,
    )
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), metrics_shape)

    def step(i: jax.Array, carry: tuple[RunnerState, Any, Any]) -> tuple[RunnerState, Any, Any]:
        state, total, count = carry
        sample_key, k = jax.random.split(learn_key(i))
        batch = _sample(config, state, sample_key, (config.batch_size,))
        algo_state, metrics, td_error = algo.learn(config, spec, state.algo, batch, k)
        buffer = state.buffer
        if config.prioritized:
            buffer = buffers.update_priorities(buffer, batch.index, td_error)
        measured = jax.tree.map(lambda m: ~jnp.isnan(m), metrics)
        total = jax.tree.map(lambda t, m, ok: t + jnp.where(ok, m, 0.0), total, metrics, measured)
        count = jax.tree.map(lambda c, ok: c + ok, count, measured)
        return state.replace(algo=algo_state, buffer=buffer), total, count

    state, total, count = jax.lax.fori_loop(0, steps, step, (state, zeros, zeros))
    mean = jax.tree.map(
        lambda t, c: jnp.where(c > 0, t / jnp.maximum(c, 1.0), jnp.nan), total, count
    )
    return state.replace(key=key), mean


def learn_if_ready(
    algo: OffPolicyAlgorithm,
    config: ReplayLoop,
    spec: EnvSpec,
    state: RunnerState,
    update_id: jax.Array,
) -> tuple[RunnerState, dict[str, jax.Array]]:
    """`learn_phase` once `learning_starts` steps are stored (and at least `n_step` per env, so
    that a transition can be sampled); before that, no gradient step (metrics 0). Before update
    `update_id` learns, update_id * train_frequency steps per env are stored; the number is the
    same for every seed, so the loop's length is not batched when seeds are vmapped."""
    stored = update_id * config.steps_per_update
    ready = stored >= max(config.learning_starts, config.num_envs * config.n_step)
    ready = ready & (config.gradient_steps > 0)
    steps = jnp.where(ready, config.gradient_steps, 0)
    state, metrics = learn_phase(algo, config, spec, state, steps)
    return state, jax.tree.map(lambda m: jnp.where(ready, m, 0.0), metrics)


def progress_metrics(
    algo: OffPolicyAlgorithm, config: ReplayLoop, state: RunnerState
) -> dict[str, jax.Array]:
    """The replay memory's size, what the exploration noise's state tells (`metrics`, where
    declared) and, for an algorithm that declares an exploration schedule
    (`epsilon(config, total_steps, env_step)`), the exploration rate."""
    metrics = {"buffer_size": buffers.size(state.buffer).astype(jnp.float32)}
    if algo.NOISE is not None and algo.NOISE.metrics is not None:
        metrics.update(algo.NOISE.metrics(state.noise))
    if algo.epsilon is not None:
        metrics["epsilon"] = algo.epsilon(config, state.total_steps, state.env_steps)
    return metrics


def update(
    algo: OffPolicyAlgorithm,
    config: ReplayLoop,
    env: JaxEnv,
    state: RunnerState,
    update_id: jax.Array,
) -> tuple[RunnerState, dict[str, jax.Array]]:
    """Update `update_id`: collect and store the next `train_frequency` steps per env, then learn
    from D (once enough is stored), as the host runner does."""
    state, totals = collect(algo, config, env, state)
    state, metrics = learn_if_ready(algo, config, env.spec, state, update_id + 1)
    metrics = {
        **metrics,
        **progress_metrics(algo, config, state),
        "episodes": totals.count,
        "episode_return_sum": totals.return_sum,
        "episode_length_sum": totals.length_sum,
    }
    return state, metrics


def CompiledOffPolicy(
    algo: OffPolicyAlgorithm,
    configs: Sequence[ReplayLoop],
    env: JaxEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
) -> CompiledRunner:
    """The compiled runner of the off-policy loop, for `seeds` seeds of each config (configs that
    differ only in traced settings)."""
    return CompiledRunner(
        sys.modules[__name__],
        algo,
        configs,
        env,
        seeds,
        seed,
        total_updates,
        chunk_updates,
        first_seed,
    )
