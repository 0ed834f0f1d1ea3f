"""The sampling-based planners of model predictive control on objectives whose optimum is known."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.ops import planning

H, A = 6, 2
TARGET = jnp.linspace(-0.6, 0.8, H * A).reshape(H, A)


def quadratic(target: jax.Array) -> planning.Objective:
    """R(a) = -sum (a - target)^2, maximised at `target`."""
    return lambda actions: -jnp.sum((actions - target) ** 2, axis=(1, 2))


def run(planner: str, target: jax.Array, low: float = -1.0, high: float = 1.0) -> planning.Plan:
    mean, std = jnp.zeros((H, A)), jnp.ones((H, A))
    bounds = {"low": jnp.full((A,), low), "high": jnp.full((A,), high)}
    if planner == "cem":
        optimise = functools.partial(
            planning.cem, population=400, elites=40, iterations=8, **bounds
        )
    else:
        std = 0.2 * std
        optimise = functools.partial(
            planning.mppi, population=1000, temperature=0.5, iterations=40, **bounds
        )
    return jax.jit(lambda key: optimise(quadratic(target), mean, std, key))(jax.random.PRNGKey(0))


@pytest.mark.parametrize("planner", ["cem", "mppi"])
def test_the_planner_finds_a_quadratics_optimum(planner: str) -> None:
    plan = run(planner, TARGET)
    np.testing.assert_allclose(np.asarray(plan.mean), np.asarray(TARGET), atol=0.05)
    assert float(quadratic(TARGET)(plan.mean[None])[0]) > -0.03
    assert float(plan.best_return) >= float(plan.mean_return)
    # an optimum outside the bounds: the plan ends on the nearest bound
    outside = TARGET.at[0, 0].set(3.0)
    plan = run(planner, outside)
    assert float(plan.mean[0, 0]) == pytest.approx(1.0, abs=0.05)
    assert float(jnp.max(jnp.abs(plan.mean))) <= 1.0


def test_cem_narrows_its_distribution_and_shift_warm_starts() -> None:
    plan = run("cem", TARGET)
    assert float(plan.std.max()) < 0.05
    sequence = jnp.arange(H * A, dtype=jnp.float32).reshape(H, A)
    shifted = planning.shift(sequence)
    np.testing.assert_array_equal(np.asarray(shifted[:-1]), np.asarray(sequence[1:]))
    np.testing.assert_array_equal(np.asarray(shifted[-1]), np.asarray(sequence[-1]))


@pytest.mark.parametrize("planner", ["cem", "mppi"])
def test_the_categorical_planners_find_a_known_sequence(planner: str) -> None:
    k, target = 4, jnp.array([3, 0, 2, 2, 1, 0, 3, 1])
    matches = lambda actions: (actions == target).sum(axis=1).astype(jnp.float32)
    probs = jnp.full((target.size, k), 1.0 / k)
    if planner == "cem":
        optimise = functools.partial(
            planning.cem_categorical, population=300, elites=30, iterations=6
        )
    else:
        optimise = functools.partial(
            planning.mppi_categorical, population=300, temperature=0.3, iterations=6
        )
    plan = jax.jit(lambda key: optimise(matches, probs, key))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(jnp.argmax(plan.mean, axis=-1)), np.asarray(target))
    np.testing.assert_allclose(np.asarray(plan.mean.sum(axis=-1)), 1.0, rtol=1e-5)
