"""The loop of adversarial imitation (GAIL), as a compiled runner family: the on-policy loop, with
the expert's demonstrations as the runner's shared data.

One update, for one seed (`update`):

    a rollout of the learner's policy                            (`runners.onpolicy.rollout`)
    the algorithm's update from the rollout and the demonstrations   (algo.learn)

The env's rewards are in the rollout (and in the reported returns); what the learner maximises
is the algorithm's business (GAIL: the discriminator's reward). The demonstrations are a dataset
(`runners.offline.OfflineData`), read once and shared by every seed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax

from bellman.envs.core import JaxEnv
from bellman.runners import onpolicy
from bellman.runners.compiled import CompiledRunner
from bellman.runners.offline import OfflineData

EPISODE_STATISTICS = True
"""The runner counts episodes with `EpisodeStatistics`."""


def init_state(
    algo: Any, config: Any, env: JaxEnv, total_updates: int, key: jax.Array, data: OfflineData
) -> onpolicy.RunnerState:
    """The on-policy loop's fresh state, the algorithm prepared with the demonstrations'
    statistics."""
    state = onpolicy.init_state(algo, config, env, total_updates, key)
    return state.replace(algo=algo.prepare(config, env.spec, state.algo, data.stats))


def update(
    algo: Any,
    config: Any,
    env: JaxEnv,
    state: onpolicy.RunnerState,
    update_id: jax.Array,
    data: OfflineData,
) -> tuple[onpolicy.RunnerState, dict[str, jax.Array]]:
    """One iteration: a rollout, then the algorithm's update from it and the demonstrations."""
    state, batch, totals = onpolicy.rollout(algo, config, env, state)
    key, learn_key = jax.random.split(state.key)
    algo_state, metrics = algo.learn(config, env.spec, state.algo, batch, learn_key, data)
    metrics = {
        **metrics,
        "episodes": totals.count,
        "episode_return_sum": totals.return_sum,
        "episode_length_sum": totals.length_sum,
    }
    return state.replace(algo=algo_state, key=key), metrics


def CompiledAdversarial(
    algo: Any,
    configs: Sequence[Any],
    env: JaxEnv,
    seeds: int,
    seed: int,
    total_updates: int,
    chunk_updates: int,
    first_seed: int = 0,
    *,
    data: OfflineData,
) -> CompiledRunner:
    """The compiled runner of adversarial imitation on `data`'s demonstrations."""
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
