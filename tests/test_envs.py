"""Env semantics: final observation kept on auto-reset, truncation apart from termination,
determinism under a key, episode statistics; the gymnasium adapter; id resolution."""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.envs import EpisodeStatistics, registry
from bellman.envs.gymnasium_env import GymnasiumVectorEnv
from bellman.envs.gymnax_env import GYMNAX_IDS, GymnaxEnv
from bellman.envs.probes import PROBES
from bellman.envs.spaces import Box, Discrete
from bellman.errors import EnvError, UnknownNameError


def rollout(env, key, actions):
    """Step one env through `actions`, returning the list of timesteps."""
    key, reset_key = jax.random.split(key)
    state, ts = env.reset(reset_key)
    step = jax.jit(env.step)
    out = [ts]
    for a in actions:
        key, step_key = jax.random.split(key)
        state, ts = step(step_key, state, jnp.asarray(a))
        out.append(ts)
    return out


def test_gymnax_ids_list_is_gymnax_registry() -> None:
    import gymnax

    assert tuple(gymnax.registered_envs) == GYMNAX_IDS


def test_cartpole_termination_keeps_final_observation() -> None:
    env = GymnaxEnv("CartPole-v1")
    steps = rollout(env, jax.random.PRNGKey(0), [1] * 60)  # always push right: falls over
    ends = [i for i, ts in enumerate(steps) if bool(ts.done)]
    assert ends, "pushing one way must end the episode"
    end = steps[ends[0]]
    assert bool(end.terminated) and not bool(end.truncated)
    final = np.asarray(end.final_obs)
    # the true last state is outside the bounds; the next observation is a fresh reset
    assert abs(final[0]) > 2.4 or abs(final[2]) > 12 * 2 * np.pi / 360
    assert np.all(np.abs(np.asarray(end.obs)) <= 0.05)
    assert not np.allclose(final, np.asarray(end.obs))
    # before the end, final_obs is simply the observation
    before = steps[ends[0] - 1]
    np.testing.assert_array_equal(before.final_obs, before.obs)


def test_time_limit_is_truncation_not_termination() -> None:
    env = GymnaxEnv("CartPole-v1", max_steps_in_episode=6)
    steps = rollout(env, jax.random.PRNGKey(1), [0, 1, 0, 1, 0, 1])
    last = steps[-1]
    assert bool(last.truncated) and not bool(last.terminated)
    assert not np.allclose(last.final_obs, last.obs)
    assert env.spec.max_episode_steps == 6


def test_episode_statistics_report_the_finished_episode() -> None:
    env = EpisodeStatistics(GymnaxEnv("CartPole-v1"))
    steps = rollout(env, jax.random.PRNGKey(2), [1] * 60)
    end = next(i for i, ts in enumerate(steps) if bool(ts.done))
    rewards = sum(float(ts.reward) for ts in steps[1 : end + 1])
    assert float(steps[end].info["episode_return"]) == pytest.approx(rewards)
    assert int(steps[end].info["episode_length"]) == end
    # the counters restart with the next episode
    assert int(steps[end + 1].info["episode_length"]) == 1


def test_same_key_same_trajectory_other_key_other_trajectory() -> None:
    env = GymnaxEnv("CartPole-v1")
    actions = [0, 1, 1, 0, 1, 0, 0, 1]
    a = np.stack([ts.obs for ts in rollout(env, jax.random.PRNGKey(3), actions)])
    b = np.stack([ts.obs for ts in rollout(env, jax.random.PRNGKey(3), actions)])
    c = np.stack([ts.obs for ts in rollout(env, jax.random.PRNGKey(4), actions)])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_vmapped_envs_step_independently() -> None:
    env = GymnaxEnv("CartPole-v1")
    keys = jax.random.split(jax.random.PRNGKey(5), 8)
    state, ts = jax.vmap(env.reset)(keys)
    state, ts = jax.vmap(env.step)(keys, state, jnp.zeros(8, jnp.int32))
    assert ts.obs.shape == (8, 4) and ts.reward.shape == (8,) and ts.terminated.dtype == bool
    assert len(np.unique(np.asarray(ts.obs[:, 0]))) == 8


def test_probe_truncation_env_is_cut_not_terminated() -> None:
    env = PROBES["probe/Truncation-v0"]()
    steps = rollout(env, jax.random.PRNGKey(6), [0] * 10)
    assert all(float(ts.reward) == 1.0 for ts in steps[1:])
    assert bool(steps[10].truncated) and not bool(steps[10].terminated)
    assert not any(bool(ts.done) for ts in steps[1:10])


def test_gymnasium_vector_env_keeps_final_observation() -> None:
    factory = registry.gymnasium_factory("CartPole-v1")
    envs = GymnasiumVectorEnv("CartPole-v1", factory, 2)
    obs = envs.reset(seed=0)
    assert obs.shape == (2, 4) and obs.dtype == np.float32
    for _ in range(200):
        ts = envs.step(np.ones(2, np.int64))
        if ts.done.any():
            break
    i = int(np.flatnonzero(ts.done)[0])
    assert ts.terminated[i]
    assert abs(ts.final_obs[i, 0]) > 2.4 or abs(ts.final_obs[i, 2]) > 0.2094
    assert np.all(np.abs(ts.obs[i]) <= 0.05)
    envs.close()


def test_gymnasium_time_limit_is_truncation() -> None:
    factory = lambda **kw: gym.make("CartPole-v1", max_episode_steps=3, **kw)
    envs = GymnasiumVectorEnv("CartPole-v1", factory, 1)
    envs.reset(seed=1)
    flags = [envs.step(np.array([i % 2])) for i in range(3)]
    assert flags[-1].truncated[0] and not flags[-1].terminated[0]
    envs.close()


def test_resolution_picks_backends() -> None:
    compiled = registry.resolve("CartPole-v1")
    assert compiled.backend == "compiled" and compiled.make_gym is not None
    assert compiled.spec.action_space == Discrete(2)
    host = registry.resolve("CartPole-v1", "gymnasium")
    assert host.backend == "gymnasium" and host.jax_env is None
    assert host.spec.obs_shape == (4,)
    pendulum = registry.resolve("Pendulum-v1")
    assert isinstance(pendulum.spec.action_space, Box)
    assert pendulum.spec.action_space.low == (-2.0,)


def test_user_env_as_module_and_class() -> None:
    resolved = registry.resolve("tests.user_envs:Corridor")
    assert resolved.backend == "gymnasium"
    assert resolved.spec.action_space == Discrete(2)
    assert resolved.spec.id == "tests.user_envs:Corridor"


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown environment 'CartPol-v1'.*CartPole-v1"):
        registry.resolve("CartPol-v1")
    with pytest.raises(UnknownNameError, match="unknown backend"):
        registry.resolve("CartPole-v1", "compield")
    with pytest.raises(EnvError, match="no JAX implementation"):
        registry.resolve("LunarLander-v3", "compiled")
    with pytest.raises(UnknownNameError, match="no gymnasium env"):
        registry.resolve("tests.user_envs:Corridoor")
    with pytest.raises(EnvError, match="cannot import module"):
        registry.resolve("no_such_module_xyz:Env")
