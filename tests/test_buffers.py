"""The replay memory: what goes in comes out as transitions, the ring keeps the newest, episode ends
keep their true final observation, frame stacks are rebuilt from frames stored once, n-step returns
and priorities; under jit and vmap."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman import buffers


def scalar_obs(value: float) -> jax.Array:
    return jnp.array([[value]], jnp.float32)  # [E = 1, obs = (1,)]


def fill(buffer: buffers.ReplayBuffer, episodes: list[tuple[int, str]], start: float = 0.0):
    """Play episodes of (length, how it ends: 'terminated' | 'truncated' | 'running') into one
    env's buffer. Observation t of episode k is 100 k + t; the action and reward of a step equal
    the observation it was taken in."""
    buffer = buffers.start(buffer, scalar_obs(start))
    for k, (length, end) in enumerate(episodes):
        for t in range(length):
            obs = 100.0 * k + t
            last = t == length - 1
            terminated = last and end == "terminated"
            truncated = last and end == "truncated"
            reached = obs + 1
            following = 100.0 * (k + 1) if (terminated or truncated) else reached
            buffer = buffers.add(
                buffer,
                jnp.array([int(obs)], jnp.int32),
                jnp.array([obs], jnp.float32),
                jnp.array([terminated]),
                jnp.array([truncated]),
                scalar_obs(reached),
                scalar_obs(following),
            )
    return buffer


def all_transitions(buffer, n_step=1, gamma=0.5, size=4096):
    batch = buffers.sample(buffer, jax.random.PRNGKey(0), (size,), n_step=n_step, gamma=gamma)
    rows = {
        (float(o), int(a), round(float(r), 6), round(float(d), 6), float(n))
        for o, a, r, d, n in zip(
            batch.obs[:, 0], batch.action, batch.reward, batch.discount, batch.next_obs[:, 0],
            strict=True,
        )
    }  # fmt: skip
    return sorted(rows)


def empty(size: int, num_envs: int = 1, frame_stack: int = 1, obs=None):
    obs = jnp.zeros((1,), jnp.float32) if obs is None else obs
    return buffers.init(size, num_envs, obs, jnp.zeros((), jnp.int32), frame_stack)


def test_transitions_come_back_with_their_true_next_observation() -> None:
    buffer = fill(empty(100), [(3, "terminated"), (2, "truncated"), (2, "running")])
    gamma = 0.5
    assert all_transitions(buffer) == [
        (0.0, 0, 0.0, gamma, 1.0),
        (1.0, 1, 1.0, gamma, 2.0),
        (2.0, 2, 2.0, 0.0, 3.0),  # terminated: nothing bootstrapped, s' the final observation
        (100.0, 100, 100.0, gamma, 101.0),
        (101.0, 101, 101.0, gamma, 102.0),  # truncated: bootstraps from the final observation
        (200.0, 200, 200.0, gamma, 201.0),
        (201.0, 201, 201.0, gamma, 202.0),
    ]
    assert int(buffers.size(buffer)) == 7


def test_the_ring_keeps_exactly_the_newest_transitions() -> None:
    buffer = fill(empty(4), [(3, "terminated"), (5, "running")])
    observations = [row[0] for row in all_transitions(buffer)]
    assert observations == [101.0, 102.0, 103.0, 104.0]  # the newest 4, across the wrap
    assert int(buffers.size(buffer)) == 4
    naive = fill(empty(1), [(3, "terminated")])  # the lecture's "no replay": the last one only
    assert all_transitions(naive) == [(2.0, 2, 2.0, 0.0, 3.0)]


def test_n_step_returns_stop_at_the_episode_end() -> None:
    buffer = fill(empty(100), [(3, "terminated"), (4, "truncated")])
    g = 0.5
    rows = {row[0]: row[2:] for row in all_transitions(buffer, n_step=3, gamma=g)}
    assert rows[0.0] == (0 + g * 1 + g**2 * 2, 0.0, 3.0)  # three steps, the third terminal
    assert rows[1.0] == (1 + g * 2, 0.0, 3.0)  # two steps to the terminal state
    assert rows[100.0] == (100 + g * 101 + g**2 * 102, g**3, 103.0)
    assert rows[102.0] == (102 + g * 103, g**2, 104.0)  # truncated: bootstrap after two steps
    assert 103.0 in rows
    # steps whose n-step window is not yet complete are not sampled
    running = fill(empty(100), [(5, "running")])
    assert [row[0] for row in all_transitions(running, n_step=3)] == [0.0, 1.0, 2.0]


def frames_env(num_frames: int = 4):
    """Stacks of 4 frames of 2x2 pixels; frame value v fills the frame."""
    return jnp.zeros((num_frames, 2, 2), jnp.uint8)


def stack(*values: int) -> np.ndarray:
    return np.stack([np.full((2, 2), v, np.uint8) for v in values])


def test_frame_stacks_are_rebuilt_from_frames_stored_once() -> None:
    buffer = buffers.init(100, 1, frames_env(), jnp.zeros((), jnp.int32), frame_stack=4)
    assert buffer.frames.shape == (1, 100 + 4 + 1, 2, 2) and buffer.frames.dtype == jnp.uint8
    history = [1]
    buffer = buffers.start(buffer, jnp.asarray(stack(1, 1, 1, 1))[None])
    # an episode of 5 steps (frames 1..6, terminated), then a new one starting at frame 50
    for t in range(5):
        reached = 2 + t
        history.append(reached)
        done = t == 4
        current = stack(*[history[max(0, len(history) - 4 + i)] for i in range(4)])
        following = stack(50, 50, 50, 50) if done else current
        buffer = buffers.add(
            buffer,
            jnp.array([t]),
            jnp.array([1.0]),
            jnp.array([done]),
            jnp.array([False]),
            jnp.asarray(current)[None],
            jnp.asarray(following)[None],
        )
    batch = buffers.sample(buffer, jax.random.PRNGKey(1), (256,))
    by_action = {int(a): (np.asarray(o), np.asarray(n)) for a, o, n in zip(
        batch.action, batch.obs, batch.next_obs, strict=True)}  # fmt: skip
    assert sorted(by_action) == [0, 1, 2, 3, 4]
    obs, next_obs = by_action[0]
    np.testing.assert_array_equal(obs, stack(1, 1, 1, 1))  # the reset frame repeated
    np.testing.assert_array_equal(next_obs, stack(1, 1, 1, 2))
    obs, next_obs = by_action[4]
    np.testing.assert_array_equal(obs, stack(2, 3, 4, 5))
    np.testing.assert_array_equal(next_obs, stack(3, 4, 5, 6))  # the final frame, kept
    assert batch.obs.dtype == jnp.uint8


def test_a_million_atari_transitions_fit_in_8_gib() -> None:
    shape = jax.eval_shape(
        lambda: buffers.init(
            1_000_000, 1, jnp.zeros((4, 84, 84), jnp.uint8), jnp.zeros((), jnp.int32), 4
        )
    )
    total = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(shape))
    assert total < 8 * 2**30, total / 2**30
    assert shape.frames.shape == (1, 1_000_005, 84, 84)  # each frame once


def test_prioritised_sampling_and_importance_weights() -> None:
    buffer = fill(empty(100), [(4, "running")])
    priorities = jnp.array([1.0, 2.0, 3.0, 4.0])
    index = jnp.array([[0, i] for i in range(4)])
    buffer = buffers.update_priorities(buffer, index, priorities, eps=0.0)
    alpha, beta = 0.5, 0.4
    batch = buffers.sample(
        buffer, jax.random.PRNGKey(0), (200_000,), gamma=1.0, alpha=alpha, beta=beta
    )
    expected = np.asarray(priorities) ** alpha / np.sum(np.asarray(priorities) ** alpha)
    counts = np.bincount(np.asarray(batch.action), minlength=4) / 200_000
    np.testing.assert_allclose(counts, expected, atol=5e-3)
    weights = {int(a): float(w) for a, w in zip(batch.action, batch.weight, strict=True)}
    w = (4 * expected) ** (-beta)
    np.testing.assert_allclose([weights[a] for a in range(4)], w / w.max(), rtol=1e-5)
    assert float(buffer.max_priority) == 4.0


def test_new_transitions_get_the_largest_priority() -> None:
    buffer = fill(empty(100), [(2, "running")])
    buffer = buffers.update_priorities(buffer, jnp.array([[0, 0]]), jnp.array([7.0]), eps=0.0)
    buffer = buffers.add(
        buffer,
        jnp.array([9]),
        jnp.array([0.0]),
        jnp.array([False]),
        jnp.array([False]),
        scalar_obs(3.0),
        scalar_obs(3.0),
    )
    assert float(buffer.priority[0, 2]) == 7.0


@pytest.mark.parametrize("num_envs", [1, 3])
def test_jitted_and_vmapped_over_seeds(num_envs: int) -> None:
    def one_seed(key: jax.Array) -> buffers.Batch:
        obs0 = jnp.zeros((num_envs, 2), jnp.float32)
        buffer = buffers.init(16, num_envs, obs0[0], jnp.zeros((), jnp.int32))
        buffer = buffers.start(buffer, obs0)

        def step(buffer, t):
            o = jnp.full((num_envs, 2), t + 1.0) + jnp.arange(num_envs)[:, None] * 1000
            a = jnp.full((num_envs,), t, jnp.int32)
            done = jnp.full((num_envs,), t % 5 == 4)
            return buffers.add(buffer, a, a.astype(jnp.float32), done, ~done & False, o, o), None

        buffer, _ = jax.lax.scan(step, buffer, jnp.arange(30))
        return buffers.sample(buffer, key, (64,))

    batch = jax.jit(jax.vmap(one_seed))(jax.random.split(jax.random.PRNGKey(0), 2))
    assert batch.obs.shape == (2, 64, 2)
    # each env ring keeps its newest ceil(16 / E) transitions
    keep = -(-16 // num_envs)
    assert int(batch.action.min()) >= 30 - keep and int(batch.action.max()) == 29
    # next_obs is the observation reached: one more than the step's own, per env
    np.testing.assert_array_equal(
        np.asarray(batch.next_obs[..., 0]) % 1000, np.asarray(batch.action) + 1
    )


def test_uniform_draws_are_uniform_over_the_sampleable_slots() -> None:
    # 10 slots written (7 transitions, 2 final observations, the newest observation) of a
    # 1,000-transition ring: rejection among the written slots, never an empty or unsampleable one
    buffer = fill(empty(1000), [(3, "terminated"), (2, "truncated"), (2, "running")])
    assert int(buffer.filled[0]) == 10
    n = 70_000
    batch = buffers.sample(buffer, jax.random.PRNGKey(1), (n,))
    values, counts = np.unique(np.asarray(batch.obs[:, 0]), return_counts=True)
    np.testing.assert_array_equal(values, [0, 1, 2, 100, 101, 200, 201])
    np.testing.assert_allclose(counts / n, 1 / 7, atol=0.006)  # about 5 standard errors
    np.testing.assert_array_equal(batch.weight, 1.0)


def test_a_ring_of_a_million_is_sampled_without_scanning_it() -> None:
    # the sampler's cost does not depend on the capacity: its program reads no whole-ring array
    small = fill(empty(100), [(5, "running")])
    large = fill(empty(1_000_000), [(5, "running")])
    cost = lambda b: (
        jax.jit(lambda b, k: buffers.sample(b, k, (256,)))
        .lower(b, jax.random.PRNGKey(0))
        .compile()
        .cost_analysis()
    )
    first = lambda c: c[0] if isinstance(c, list) else c
    assert first(cost(large))["flops"] <= 1.5 * first(cost(small))["flops"]
