"""DAgger's loop (Ross et al., 2011), as a compiled runner family: the learner's rollouts, labelled
by an expert queried online, aggregated, and cloned.

One update (a DAgger round at each update), for one seed (`update`):

    beta_i = beta * beta_decay^i                                   (mixing_weight)
    T steps of E envs, each step's action the expert's with probability beta_i, else the
      learner's greedy one                                         (rollout, each step a mixture)
    the expert's action for every visited observation: its label  (expert.act, in mixture)
    D <- D u {(s, pi*(s))}                                         (aggregate)
    `gradient_steps` steps of the cloning loss on minibatches of D (clone: algo.learn on sample)

D starts with the demonstrations of `--dataset`, if given (round 0 of the paper: behaviour
cloning on expert data), and holds every labelled observation after them up to its capacity
(`aggregate_size`; beyond it the oldest labelled ones are overwritten, the demonstrations kept).
The expert is a trained run's policy (`Expert`: its algorithm, config and state), shared data of
the compiled runner like the offline family's dataset. The metric `expert_labels` counts every
label the learner was given: the demonstrations and one per step played.

The host runner (`runners.dagger_host`, gymnasium envs) plays the same mixture (`mixture`) and
ends each round with the same `learn_round`: D's ring (`empty_aggregate`, `aggregate`), its
minibatches (`sample`) and the cloning phase (`clone`) are this module's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman.buffers import Batch
from bellman.contracts import DataStats
from bellman.envs.core import JaxEnv
from bellman.envs.spaces import EnvSpec
from bellman.runners.common import EpisodeTotals, env_action
from bellman.runners.compiled import CompiledRunner

EPISODE_STATISTICS = True
"""The runner counts the learner's rollout episodes with `EpisodeStatistics`."""


class Expert(struct.PyTreeNode):
    """A trained policy to query: its state (a pytree) and, static, its algorithm module, config
    and env spec."""

    state: Any
    module: Any = struct.field(pytree_node=False)
    config: Any = struct.field(pytree_node=False)
    spec: EnvSpec = struct.field(pytree_node=False)

    def act(self, obs: jax.Array) -> jax.Array:
        """The expert's greedy actions for observations `[B, ...]`."""
        return self.module.greedy(self.config, self.spec, self.state, obs)


class DaggerData(struct.PyTreeNode):
    """The runner's shared data: the expert, the demonstrations D starts with (`[N, ...]`
    observations and actions; N may be 0), and the statistics the learner standardises its
    observations with (the demonstrations', or 0 and 1 without any)."""

    expert: Expert
    demo_obs: jax.Array
    demo_action: jax.Array
    stats: DataStats


class Aggregate(struct.PyTreeNode):
    """The labelled observations D after the demonstrations: a ring of `aggregate_size`."""

    obs: jax.Array
    action: jax.Array
    count: jax.Array
    """`[]` observations labelled so far (the ring holds the newest min(count, size))."""


class RunnerState(struct.PyTreeNode):
    algo: Any
    env_state: Any
    obs: jax.Array
    aggregate: Aggregate
    round: jax.Array
    key: jax.Array


def empty_aggregate(size: int, obs: jax.Array, expert: Expert) -> Aggregate:
    """An empty D of `size` slots for observations like `obs` `[B, ...]` and the expert's labels
    of them."""
    label = jax.eval_shape(expert.act, obs)
    return Aggregate(
        obs=jnp.zeros((size, *obs.shape[1:]), obs.dtype),
        action=jnp.zeros((size, *label.shape[1:]), label.dtype),
        count=jnp.zeros((), jnp.int32),
    )


def init_state(
    algo: Any, config: Any, env: JaxEnv, total_updates: int, key: jax.Array, data: DaggerData
) -> RunnerState:
    key, algo_key, reset_key = jax.random.split(key, 3)
    state = algo.init(algo_key, config, env.spec, total_updates)
    state = algo.prepare(config, env.spec, state, data.stats)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(reset_key, config.num_envs))
    memory = empty_aggregate(config.aggregate_size, ts.obs, data.expert)
    return RunnerState(state, env_state, ts.obs, memory, jnp.zeros((), jnp.int32), key)


def mixing_weight(config: Any, i: jax.Array) -> jax.Array:
    """beta_i = beta * beta_decay^i: the expert's share of round i's actions (i from 0)."""
    return config.beta * config.beta_decay ** i.astype(jnp.float32)


def mixture(
    algo: Any,
    config: Any,
    spec: EnvSpec,
    algo_state: Any,
    expert: Expert,
    obs: jax.Array,
    beta: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """One step of pi_i' = beta_i pi* + (1 - beta_i) pi_i in envs `[E]`: each env's action is the
    expert's greedy one with probability beta_i (drawn per env), else the learner's. Returns the
    actions and the expert's labels of `obs` `[E, ...]` (every visited state is labelled)."""
    label = expert.act(obs)
    learner = algo.greedy(config, spec, algo_state, obs)
    use_expert = jax.random.uniform(key, (obs.shape[0],)) < beta
    shape = (obs.shape[0],) + (1,) * (label.ndim - 1)
    action = jnp.where(use_expert.reshape(shape), label, learner.astype(label.dtype))
    return action, label


def rollout(
    algo: Any, config: Any, env: JaxEnv, state: RunnerState, expert: Expert, beta: jax.Array
) -> tuple[RunnerState, jax.Array, jax.Array, EpisodeTotals]:
    """`num_steps` steps of every env with the beta-mixture of expert and learner; returns the
    visited observations and their expert labels `[T * E, ...]`."""

    def step(state: RunnerState, keys: jax.Array) -> tuple[RunnerState, Any]:
        mix_key, step_keys = keys[0], keys[1:]
        action, label = mixture(
            algo, config, env.spec, state.algo, expert, state.obs, beta, mix_key
        )
        env_state, ts = jax.vmap(env.step)(step_keys, state.env_state, env_action(env.spec, action))
        ended = (ts.done, ts.info["episode_return"], ts.info["episode_length"])
        return state.replace(env_state=env_state, obs=ts.obs), (state.obs, label, ended)

    key, rollout_key = jax.random.split(state.key)
    keys = jax.random.split(rollout_key, (config.num_steps, 1 + config.num_envs))
    state, (obs, labels, ended) = jax.lax.scan(step, state.replace(key=key), keys)
    done, episode_return, episode_length = ended
    totals = EpisodeTotals.of_step(
        done, {"episode_return": episode_return, "episode_length": episode_length}
    )
    flat = lambda x: x.reshape((-1, *x.shape[2:]))
    return state, flat(obs), flat(labels), totals


def aggregate(memory: Aggregate, obs: jax.Array, action: jax.Array) -> Aggregate:
    """D with the newly labelled observations `[M, ...]` written at the ring's next slots."""
    size = memory.obs.shape[0]
    slots = (memory.count + jnp.arange(obs.shape[0])) % size
    return Aggregate(
        obs=memory.obs.at[slots].set(obs),
        action=memory.action.at[slots].set(action),
        count=memory.count + obs.shape[0],
    )


def sample(
    config: Any, memory: Aggregate, data: DaggerData, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A minibatch drawn uniformly from D: the demonstrations and the labelled observations."""
    demos = data.demo_obs.shape[0]
    held = demos + jnp.minimum(memory.count, memory.obs.shape[0])
    index = jax.random.randint(key, (config.batch_size,), 0, jnp.maximum(held, 1))
    in_demos = index < demos
    demo_index = jnp.minimum(index, max(demos - 1, 0))
    ring_index = jnp.maximum(index - demos, 0)
    pick = lambda a, b: jnp.where(in_demos.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    if demos == 0:
        return memory.obs[ring_index], memory.action[ring_index]
    obs = pick(data.demo_obs[demo_index], memory.obs[ring_index])
    action = pick(
        data.demo_action[demo_index].astype(memory.action.dtype), memory.action[ring_index]
    )
    return obs, action


def clone(
    algo: Any,
    config: Any,
    spec: EnvSpec,
    algo_state: Any,
    memory: Aggregate,
    data: DaggerData,
    key: jax.Array,
) -> tuple[Any, dict[str, jax.Array]]:
    """pi_{i+1}: `gradient_steps` steps of the learner's `learn` on minibatches of D (`sample`);
    returns the new state and the steps' mean metrics."""

    def learn_step(carry: tuple[Any, jax.Array], _: Any) -> tuple[tuple[Any, jax.Array], Any]:
        algo_state, key = carry
        key, sample_key, learn_key = jax.random.split(key, 3)
        s, a = sample(config, memory, data, sample_key)
        batch = Batch(
            obs=s,
            action=a,
            reward=jnp.zeros(s.shape[:1]),
            discount=jnp.zeros(s.shape[:1]),
            next_obs=s,
            weight=jnp.ones(s.shape[:1]),
            index=jnp.zeros((s.shape[0], 2), jnp.int32),
        )
        algo_state, metrics = algo.learn(config, spec, algo_state, batch, learn_key)
        return (algo_state, key), metrics

    (algo_state, _), metrics = jax.lax.scan(
        learn_step, (algo_state, key), None, length=config.gradient_steps
    )
    return algo_state, jax.tree.map(lambda m: m.mean(), metrics)


def learn_round(
    algo: Any,
    config: Any,
    spec: EnvSpec,
    algo_state: Any,
    memory: Aggregate,
    data: DaggerData,
    obs: jax.Array,
    labels: jax.Array,
    beta: jax.Array,
    key: jax.Array,
) -> tuple[Any, Aggregate, dict[str, jax.Array]]:
    """The end of a round that played `obs` `[M, ...]`, labelled `labels`: D <- D u D_i, then
    the cloning phase (`clone`). Returns the learner, D and the round's metrics: the cloning's,
    `beta`, `expert_labels` (labels given so far, the demonstrations included) and how the
    learner now acts on the round's states (`expert_agreement` for discrete labels, else
    `expert_action_error`)."""
    memory = aggregate(memory, obs, labels)
    algo_state, metrics = clone(algo, config, spec, algo_state, memory, data, key)
    learned = algo.greedy(config, spec, algo_state, obs)
    if jnp.issubdtype(labels.dtype, jnp.integer):  # how often the learner now acts as labelled
        metrics["expert_agreement"] = jnp.mean(learned == labels).astype(jnp.float32)
    else:  # how far from the labels its actions now are
        metrics["expert_action_error"] = jnp.mean(jnp.abs(learned - labels))
    labelled = data.demo_obs.shape[0] + memory.count
    metrics = {**metrics, "beta": beta, "expert_labels": labelled.astype(jnp.float32)}
    return algo_state, memory, metrics


def update(
    algo: Any,
    config: Any,
    env: JaxEnv,
    state: RunnerState,
    update_id: jax.Array,
    data: DaggerData,
) -> tuple[RunnerState, dict[str, jax.Array]]:
    """One DAgger round: play the mixture, label, aggregate, then clone D."""
    beta = mixing_weight(config, state.round)
    state, obs, labels, totals = rollout(algo, config, env, state, data.expert, beta)
    key, learn_key = jax.random.split(state.key)
    algo_state, memory, metrics = learn_round(
        algo, config, env.spec, state.algo, state.aggregate, data, obs, labels, beta, learn_key
    )
    metrics = {
        **metrics,
        "episodes": totals.count,
        "episode_return_sum": totals.return_sum,
        "episode_length_sum": totals.length_sum,
    }
    new = state.replace(algo=algo_state, aggregate=memory, round=state.round + 1, key=key)
    return new, metrics


def CompiledDagger(
    algo: Any,
    configs: Sequence[Any],
    env: JaxEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
    *,
    data: DaggerData,
) -> CompiledRunner:
    """The compiled runner of DAgger with `data`'s expert and demonstrations."""
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
        data=data,
    )
