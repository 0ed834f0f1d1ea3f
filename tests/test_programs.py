"""The on-disk program cache: a second runner with the same settings loads its programs (no
tracing) and computes the same numbers; other settings get other programs."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from bellman.algos import ppo
from bellman.envs import registry
from bellman.runners import programs
from bellman.runners.onpolicy import CompiledOnPolicy


def runner(updates: int) -> CompiledOnPolicy:
    config = ppo.PPOConfig(num_envs=4, num_steps=16, num_minibatches=2)
    env = registry.resolve("CartPole-v1").jax_env
    return CompiledOnPolicy(ppo, [config], env, 2, 3, updates, 2)


def run(r: CompiledOnPolicy) -> list[np.ndarray]:
    state = r.init_state()
    for first in range(0, r.total_updates, r.chunk_updates):
        state, _ = r.run_chunk(state, first)
    return [np.asarray(x) for x in jax.tree.leaves(state.algo)]


def test_second_runner_loads_the_programs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BELLMAN_CACHE_DIR", str(tmp_path))
    first = runner(4)
    first.compile()
    stored = sorted((tmp_path / "programs").glob("*.bin"))
    assert len(stored) == 2, "the init and chunk programs"
    expected = run(first)

    second = runner(4)
    traced = []
    original = second._chunk.lower
    monkeypatch.setattr(second._chunk, "lower", lambda *a: traced.append(1) or original(*a))
    second.compile()
    assert not traced, "a cached program is loaded, not traced"
    for a, b in zip(expected, run(second), strict=True):
        np.testing.assert_array_equal(a, b)

    other = runner(6)  # another run length: another learning-rate schedule, other programs
    other.compile()
    assert len(list((tmp_path / "programs").glob("*.bin"))) == 4


def test_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BELLMAN_CACHE_DIR", "off")
    assert programs.directory() is None
    runner(4).compile()
    assert not list(tmp_path.iterdir())


def test_key_depends_on_description_and_devices() -> None:
    devices = jax.devices()[:1]
    assert programs.key_of(["a"], devices) == programs.key_of(["a"], devices)
    assert programs.key_of(["a"], devices) != programs.key_of(["b"], devices)
    if len(jax.devices()) > 1:
        assert programs.key_of(["a"], devices) != programs.key_of(["a"], jax.devices()[1:2])


def test_light_programs_draw_the_same_random_bits_from_smaller_code() -> None:
    key, devices = jax.random.PRNGKey(7), jax.devices()[:1]
    fast_fn = jax.jit(lambda k: jax.random.normal(k, (5,)))
    light_fn = jax.jit(lambda k: jax.random.normal(k, (5,)) + 0.0)  # another function: no reuse
    fast = programs.start(None, lambda: fast_fn.lower(key), devices).result()
    light = programs.start(None, lambda: light_fn.lower(key), devices, light=True).result()
    np.testing.assert_array_equal(np.asarray(fast(key)), np.asarray(light(key)))
    # the light program keeps threefry's rolled loop; the training programs unroll it
    assert " while(" in light.as_text() and " while(" not in fast.as_text()


def test_a_program_compiles_in_the_background_and_reports_its_errors() -> None:
    devices = jax.devices()[:1]
    x = np.ones(3, np.float32)
    program = programs.start(None, lambda: jax.jit(lambda v: v * 2).lower(x), devices)
    np.testing.assert_array_equal(np.asarray(program(x)), 2 * x)
    assert program.wait_s >= 0.0

    def broken() -> None:
        raise ValueError("cannot trace this")

    late = programs.start(None, broken, devices, trace_on_worker=True)  # traced on the worker
    with pytest.raises(ValueError, match="cannot trace this"):
        late.result()
