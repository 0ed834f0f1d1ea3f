"""Evolution strategies (bellman/algos/es.py, bellman/runners/evolution.py): the strategies
through bellman's wrapper on a known function, fitness shaping on hand numbers, antithetic
pairs, the generation's loop, learning CartPole, and resume after SIGKILL."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import bellman
from bellman.algos import es
from bellman.envs.spaces import Box, EnvSpec
from bellman.errors import ConfigError, EnvError
from tests.conftest import assert_resume_is_exact

SPEC = EnvSpec("test/Linear", (3,), "float32", Box((2,), (-1.0,) * 2, (1.0,) * 2), 10)
"""A linear policy on it has 3 x 2 weights and 2 biases: 8 parameters."""


def flat(params: jax.Array) -> jax.Array:
    return ravel_pytree(params)[0]


@pytest.mark.parametrize("strategy", ["open_es", "cma_es", "snes", "pgpe", "ars", "simple_ga"])
def test_each_strategy_minimises_the_sphere_through_bellmans_ask_and_tell(strategy: str) -> None:
    """The return -||theta - 1||^2 of 8 parameters, maximised from theta = 0 (a linear policy
    starts at zero): every strategy brings its centre within 0.25 of the optimum."""
    sigma = 0.05 if strategy == "simple_ga" else 0.3  # a GA's best member is one mutation away
    config = es.ESConfig(
        strategy=strategy, population=32, hidden_sizes=(), sigma=sigma, learning_rate=0.1
    )
    config.validate()

    @jax.jit
    def run(key: jax.Array) -> jax.Array:
        state = es.init(key, config, SPEC, 1)

        def generation(state: es.ESState, key: jax.Array) -> tuple[es.ESState, None]:
            ask_key, tell_key = jax.random.split(key)
            population, state = es.ask(config, SPEC, state, ask_key)
            thetas = jax.vmap(flat)(population)
            returns = -jnp.sum((thetas - 1.0) ** 2, axis=1)
            moments = (jnp.zeros(()), jnp.zeros(3), jnp.zeros(3))
            state, _ = es.tell(config, SPEC, state, population, returns, moments, tell_key)
            return state, None

        state, _ = jax.lax.scan(generation, state, jax.random.split(key, 150))
        return flat(es.center(config, SPEC, state))

    start = flat(es.center(config, SPEC, es.init(jax.random.key(0), config, SPEC, 1)))
    assert float(jnp.sum((start - 1.0) ** 2)) > 5.0  # at zero (SimpleGA: near it)
    centre = run(jax.random.key(0))
    assert float(jnp.max(jnp.abs(centre - 1.0))) < 0.25, centre


def test_fitness_shaping_on_hand_numbers() -> None:
    """evosax minimises: bellman hands it -F, and centred ranks of -F put the best return at
    -0.5 (the most weight towards it in the descent) and the worst at +0.5."""
    fitness = -jnp.array([3.0, 1.0, 2.0, 10.0])  # -F for returns 3, 1, 2, 10
    shape = lambda name: es.shaping(es.ESConfig(fitness_shaping=name))(None, fitness, None, None)
    np.testing.assert_allclose(shape("centered_rank"), [-1 / 6, 0.5, 1 / 6, -0.5], rtol=1e-6)
    z = (fitness - fitness.mean()) / fitness.std()
    np.testing.assert_allclose(shape("z_score"), z, rtol=1e-5)
    np.testing.assert_allclose(shape("raw"), fitness)


def test_open_es_steps_towards_the_better_half_of_a_pair() -> None:
    """One generation of plain SGD OpenES where only the first antithetic pair's + member is
    rewarded: the centre moves along that member's eps, by alpha / (P sigma) * (u+ - u-)."""
    config = es.ESConfig(
        population=4, hidden_sizes=(), sigma=0.5, learning_rate=1.0, optimizer="sgd"
    )
    state = es.init(jax.random.key(1), config, SPEC, 1)
    population, state = es.ask(config, SPEC, state, jax.random.key(2))
    eps = (jax.vmap(flat)(population) - flat(es.center(config, SPEC, state))) / config.sigma
    returns = jnp.array([1.0, 0.0, 0.0, 0.0])
    moments = (jnp.zeros(()), jnp.zeros(3), jnp.zeros(3))
    state, metrics = es.tell(config, SPEC, state, population, returns, moments, jax.random.key(3))
    # centred ranks of -F = [-1, 0, 0, 0] (ties share a rank): -0.5 for member 0, 1/6 for the rest
    u = jnp.array([-0.5, 1 / 6, 1 / 6, 1 / 6])
    expected = -1.0 * (u @ eps) / (4 * config.sigma)
    np.testing.assert_allclose(flat(es.center(config, SPEC, state)), expected, atol=1e-5)
    assert float(metrics["fitness_best"]) == 1.0 and float(metrics["fitness_mean"]) == 0.25


@pytest.mark.parametrize("strategy", ["open_es", "pgpe", "ars"])
def test_antithetic_members_come_in_mirrored_pairs(strategy: str) -> None:
    """Member i and member i + P/2 lie on either side of the centre: theta_i - mu =
    -(theta_{i+P/2} - mu)."""
    config = es.ESConfig(strategy=strategy, population=8, hidden_sizes=(4,))
    state = es.init(jax.random.key(0), config, SPEC, 1)
    population, state = es.ask(config, SPEC, state, jax.random.key(1))
    offsets = jax.vmap(flat)(population) - flat(es.center(config, SPEC, state))
    np.testing.assert_allclose(offsets[:4], -offsets[4:], atol=1e-6)
    assert float(jnp.min(jnp.linalg.norm(offsets, axis=1))) > 0.1
    plain = es.ESConfig(population=8, hidden_sizes=(4,), antithetic=False)
    state = es.init(jax.random.key(0), plain, SPEC, 1)
    population, state = es.ask(plain, SPEC, state, jax.random.key(1))
    offsets = jax.vmap(flat)(population) - flat(es.center(plain, SPEC, state))
    assert not np.allclose(offsets[:4], -offsets[4:], atol=1e-3)


def test_ars_keeps_its_top_directions_and_the_config_refuses_what_cannot_work() -> None:
    es_object, _ = es.strategy(es.ESConfig(strategy="ars", population=64, top_directions=4), SPEC)
    assert es_object.num_elites == 4
    es_object, _ = es.strategy(es.ESConfig(strategy="ars", population=64), SPEC)
    assert es_object.num_elites == 32
    bad = [
        dict(strategy="ars", population=7),
        dict(strategy="ars", population=8, top_directions=5),
        dict(strategy="open_es", top_directions=2),
        dict(strategy="cma_es", fitness_shaping="z_score"),
        dict(strategy="simple_ga", weight_decay=0.1),
        dict(hidden_sizes=(0,)),
    ]
    for fields in bad:
        with pytest.raises(ConfigError):
            es.ESConfig(**fields).validate()  # type: ignore[arg-type]
    es.ESConfig(strategy="simple_ga", population=7).validate()  # no pairs: any size
    with pytest.raises(EnvError, match="time limit"):
        es.check_env(
            es.ESConfig(), EnvSpec("test/Endless", (3,), "float32", SPEC.action_space, None)
        )


def test_open_es_learns_cartpole_and_logs_the_generations_metrics(tmp_path: Path) -> None:
    """2 seeds of OpenES with its defaults (256 members, an MLP of 2 x 32) on CartPole-v1:
    every seed's centre balances the pole for the whole episode, 500 steps, within 30
    generations (seeds 0 to 5 all did within 25)."""
    run = bellman.train(
        "es", env="CartPole-v1", steps=256 * 500 * 30, seeds=2, out=tmp_path / "run",
        progress=False, evals=2, eval_episodes=10,
    )  # fmt: skip
    assert np.all(np.asarray(run.summary["final_return_per_seed"]) >= 475.0)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    last = [r for r in records if "fitness_best" in r][-1]
    for name in ("fitness_best", "fitness_mean", "fitness_std", "center_return", "sigma"):
        assert np.all(np.isfinite(last[name])), name
    assert np.all(np.asarray(last["fitness_best"]) >= np.asarray(last["fitness_mean"]))
    # steps inside episodes: at most the generation's budget of members x 500 steps
    assert np.all(np.asarray(last["env_steps"]) <= 256 * 500)
    assert np.all(np.asarray(last["env_steps"]) > 256 * 10)


def test_ars_v2_normalises_with_the_members_observations(tmp_path: Path) -> None:
    """ARS V2-t (linear policy, observation statistics, top directions) on Pendulum-v1: the
    running statistics are those of the visited observations (cos, sin in [-1, 1], the angular
    velocity in [-8, 8]), and the checkpointed state carries them."""
    run = bellman.train(
        "es", env="Pendulum-v1", steps=16 * 200 * 3, out=tmp_path / "run", progress=False,
        evals=0, eval_episodes=1, strategy="ars", population=16, top_directions=4,
        hidden_sizes=[], normalize_obs=True, continuous_actions="clip", optimizer="sgd",
    )  # fmt: skip
    stats = jax.tree.map(lambda x: np.asarray(x)[0], run.algo_state.obs_stats)  # seed 0
    # 17 members' 200 steps each generation, 3 generations (and the tiny starting count)
    np.testing.assert_allclose(np.asarray(stats.count), 3 * 17 * 200, rtol=1e-3)
    assert np.all(np.abs(np.asarray(stats.mean)[:2]) <= 1.0)
    assert 0.0 < float(np.asarray(stats.var)[2]) < 64.0


def test_ars_learns_cartpole_on_the_gymnasium_backend(tmp_path: Path) -> None:
    """ARS V2-t with a linear policy on gymnasium's CartPole-v1 (a vector env of 17 envs):
    the centre balances the pole within 12 generations (it did within 4 here)."""
    run = bellman.train(
        "es", env="CartPole-v1", backend="gymnasium", steps=16 * 500 * 12, out=tmp_path / "run",
        progress=False, evals=1, eval_episodes=5, strategy="ars", population=16,
        top_directions=4, sigma=0.03, learning_rate=0.02, optimizer="sgd", hidden_sizes=[],
        normalize_obs=True,
    )  # fmt: skip
    assert run.summary["backend"] == "gymnasium"
    assert run.summary["final_return_mean"] >= 475.0


HOST_ARGS = [
    "train", "es", "--env", "CartPole-v1", "--backend", "gymnasium", "--steps", "32000",
    "--population", "8", "--max-steps", "100", "--hidden-sizes", "--normalize-obs",
    "--log-every", "4000", "--checkpoint-every", "8000", "--evals", "0", "--eval-episodes", "1",
    "--quiet",
]  # fmt: skip
"""40 generations of 8 x 100 steps on gymnasium, 5 a chunk, a checkpoint every 10."""


def test_host_resume_after_sigkill_continues_exactly(tmp_path: Path) -> None:
    """On gymnasium too: every generation reseeds its envs from the update, so the resumed run
    plays the same episodes and ends bit for bit where an uninterrupted one ends."""
    assert_resume_is_exact(HOST_ARGS, "es", tmp_path, 10, 40)


ARGS = [
    "train", "es", "--env", "CartPole-v1", "--steps", "3840000", "--population", "64",
    "--max-steps", "200", "--hidden-sizes", "16", "--normalize-obs", "--log-every", "128000",
    "--checkpoint-every", "640000", "--evals", "0", "--eval-episodes", "1", "--quiet",
]  # fmt: skip
"""300 generations of 64 x 200 steps, 10 a chunk, a checkpoint every 50."""


def test_resume_after_sigkill_continues_exactly(tmp_path: Path) -> None:
    """The strategy's state (centre, optimiser, generation counter), the observation statistics
    and the keys come back: the resumed run ends bit for bit where an uninterrupted one ends."""
    assert_resume_is_exact(ARGS, "es", tmp_path, 50, 300)
