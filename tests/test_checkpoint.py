"""Checkpoints: exact round trip, atomic files, corruption and mismatch named in the error."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.algos import ppo
from bellman.envs import registry
from bellman.errors import CheckpointError
from bellman.experiment import checkpoint as ckpt


def parts(seed: int = 0) -> dict:
    spec = registry.resolve("CartPole-v1").spec
    state = jax.vmap(lambda k: ppo.init(k, ppo.PPOConfig(), spec, 10))(
        jax.random.split(jax.random.PRNGKey(seed), 3)
    )
    return {"algo": state, "runner": {"key": jax.random.split(jax.random.PRNGKey(7), 3)}}


def test_round_trip_is_exact(tmp_path: Path) -> None:
    original = parts()
    path = ckpt.path_for(tmp_path, 12)
    ckpt.save(path, original, {"update": 12})
    restored, meta = ckpt.load(path, jax.eval_shape(lambda: original))
    assert meta["update"] == 12
    for a, b in zip(jax.tree.leaves(original), jax.tree.leaves(restored), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert jax.tree.structure(original) == jax.tree.structure(restored)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is renamed away"


def test_truncated_file_is_detected(tmp_path: Path) -> None:
    path = ckpt.path_for(tmp_path, 1)
    ckpt.save(path, parts(), {"update": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"update_000000001\.ckpt is damaged"):
        ckpt.load(path, jax.eval_shape(parts))


def test_flipped_byte_is_detected(tmp_path: Path) -> None:
    path = ckpt.path_for(tmp_path, 2)
    ckpt.save(path, parts(), {"update": 2})
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum does not match"):
        ckpt.load(path, jax.eval_shape(parts))


def test_other_settings_are_named(tmp_path: Path) -> None:
    path = ckpt.path_for(tmp_path, 3)
    ckpt.save(path, parts(), {"update": 3})
    spec = registry.resolve("CartPole-v1").spec
    wider = jax.eval_shape(
        lambda: {
            "algo": jax.vmap(lambda k: ppo.init(k, ppo.PPOConfig(hidden_sizes=(32,)), spec, 10))(
                jax.random.split(jax.random.PRNGKey(0), 3)
            ),
            "runner": {"key": jnp.zeros((3, 2), jnp.uint32)},
        }
    )
    with pytest.raises(CheckpointError, match="does not match this run's settings"):
        ckpt.load(path, wider)


def test_listing_and_pruning(tmp_path: Path) -> None:
    for update in (0, 5, 10, 15):
        ckpt.save(ckpt.path_for(tmp_path, update), {"x": jnp.ones(2) * update}, {})
    ckpt.prune(tmp_path, keep=2)
    assert [u for u, _ in ckpt.list_checkpoints(tmp_path)] == [10, 15]
