"""The physical limit for PPO (W1) and DQN (W2) on CartPole and SAC (W3) on Pendulum: FLOPs per
env step, and this machine's matmul rate for the same layer shapes.

    python benchmarks/efficiency.py [--workload ppo-cartpole | dqn-cartpole | sac-pendulum]

- FLOPs per environment step come from XLA's cost analysis of the compiled pieces of one PPO
  update (XLA counts a loop body once, so the pieces are compiled without loops and weighed by
  how often an update runs them): acting and stepping the envs T times, K * M minibatch gradient
  steps (forward, backward, clipping, Adam), and the value pass over the rollout.
- The attainable matmul rate is measured for the same layer shapes (the minibatch's forward and
  backward products), on one device and on all devices at once (seeds sharded over cores).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import bellman
from bellman import buffers
from bellman.algos import dqn, ppo, sac
from bellman.envs import EpisodeStatistics, registry

bellman.configure()  # bellman's XLA flags (a device per core), as `bellman train` runs with

DQN_W2 = dqn.DQNConfig(
    num_envs=1,
    buffer_size=100_000,
    batch_size=64,
    learning_rate=2.3e-3,
    learning_starts=1000,
    train_frequency=256,
    gradient_steps=128,
    target_update_interval=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    hidden_sizes=(256, 256),
    activation="relu",
    layer_norm=False,
)
"""Workload W2 of the peer benchmarks: RL Zoo's CartPole DQN settings."""


def flops(fn, *args) -> float:
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0]
    return float(analysis["flops"])


def ppo_flops_per_env_step(config: ppo.PPOConfig) -> dict[str, float]:
    env = EpisodeStatistics(registry.resolve("CartPole-v1").jax_env)
    spec = env.spec
    key = jax.random.PRNGKey(0)
    state = ppo.init(key, config, spec, 10)
    b, t = config.num_envs, config.num_steps
    obs = jnp.zeros((b, *spec.obs_shape))
    env_state, _ = jax.vmap(env.reset)(jax.random.split(key, b))
    act = flops(lambda s, o, k: ppo.act(config, spec, s, o, k), state, obs, key)
    step = flops(
        lambda s, a, k: jax.vmap(env.step)(jax.random.split(k, b), s, a),
        env_state,
        jnp.zeros(b, jnp.int32),
        key,
    )
    n = config.minibatch_size
    batch = ppo.Batch(
        obs=jnp.zeros((n, *spec.obs_shape)),
        action=jnp.zeros(n, jnp.int32),
        log_prob=jnp.zeros(n),
        value=jnp.zeros(n),
        advantage=jnp.ones(n),
        target=jnp.ones(n),
    )
    flat, unravel = jax.flatten_util.ravel_pytree(state.params)
    minibatch = flops(
        lambda f, o, mb: ppo._minibatch_step(config, spec, unravel, 1e-3, 1.0, (f, o), mb),
        flat,
        state.opt_state,
        batch,
    )
    values = flops(
        lambda s, o: ppo.value(config, spec, s.params, o),
        state,
        jnp.zeros((2, t, b, *spec.obs_shape)),
    )
    per_update = t * (act + step) + config.num_epochs * config.num_minibatches * minibatch + values
    return {
        "act": act,
        "env_step": step,
        "minibatch_step": minibatch,
        "value_pass": values,
        "per_update": per_update,
        "per_env_step": per_update / (t * b),
    }


def dqn_flops_per_env_step(config: dqn.DQNConfig) -> dict[str, float]:
    """Acting and stepping the env every step, and a gradient step (online and target forward
    passes, backward, Adam) `gradient_steps` times every `train_frequency` steps of each env."""
    env = EpisodeStatistics(registry.resolve("CartPole-v1").jax_env)
    spec = env.spec
    key = jax.random.PRNGKey(0)
    state = dqn.init(key, config, spec, 10)
    b = config.num_envs
    obs = jnp.zeros((b, *spec.obs_shape))
    env_state, _ = jax.vmap(env.reset)(jax.random.split(key, b))
    act = flops(lambda s, o, k: dqn.act(config, spec, s, o, k, jnp.int32(0)), state, obs, key)
    step = flops(
        lambda s, a, k: jax.vmap(env.step)(jax.random.split(k, b), s, a),
        env_state,
        jnp.zeros(b, jnp.int32),
        key,
    )
    n = config.batch_size
    batch = buffers.Batch(
        obs=jnp.zeros((n, *spec.obs_shape)),
        action=jnp.zeros(n, jnp.int32),
        reward=jnp.zeros(n),
        discount=jnp.ones(n),
        next_obs=jnp.zeros((n, *spec.obs_shape)),
        weight=jnp.ones(n),
        index=jnp.zeros((n, 2), jnp.int32),
    )
    learn = flops(lambda s, mb: dqn.learn(config, spec, s, mb, key), state, batch)
    steps = config.train_frequency * b
    per_update = config.train_frequency * (act + step) + config.gradient_steps * learn
    return {
        "act": act,
        "env_step": step,
        "gradient_step": learn,
        "per_update": per_update,
        "per_env_step": per_update / steps,
    }


SAC_W3 = sac.SACConfig(learning_rate=1e-3, learning_starts=1000)
"""Workload W3 of the peer benchmarks: SAC on Pendulum-v1 (batch 256, 2 x 256, one gradient step
per env step)."""


def sac_flops_per_env_step(config: sac.SACConfig) -> dict[str, float]:
    """Acting and stepping the env, and one gradient step (critic target, critics, actor,
    temperature, Polyak) per env step."""
    env = EpisodeStatistics(registry.resolve("Pendulum-v1").jax_env)
    spec = env.spec
    key = jax.random.PRNGKey(0)
    state = sac.init(key, config, spec, 10)
    obs = jnp.zeros((1, *spec.obs_shape))
    env_state, _ = jax.vmap(env.reset)(jax.random.split(key, 1))
    act = flops(lambda s, o, k: sac.act(config, spec, s, o, k, jnp.int32(0)), state, obs, key)
    step = flops(
        lambda s, a, k: jax.vmap(env.step)(jax.random.split(k, 1), s, a),
        env_state,
        jnp.zeros((1, 1)),
        key,
    )
    n = config.batch_size
    batch = buffers.Batch(
        obs=jnp.zeros((n, *spec.obs_shape)),
        action=jnp.zeros((n, 1)),
        reward=jnp.zeros(n),
        discount=jnp.ones(n),
        next_obs=jnp.zeros((n, *spec.obs_shape)),
        weight=jnp.ones(n),
        index=jnp.zeros((n, 2), jnp.int32),
    )
    learn = flops(lambda s, mb: sac.learn(config, spec, s, mb, key), state, batch)
    per_step = act + step + learn
    return {"act": act, "env_step": step, "gradient_step": learn, "per_env_step": per_step}


def sac_layer_shapes(config: sac.SACConfig, obs_dim: int, action_dim: int) -> list[tuple[int, int]]:
    """(in, out) of the actor's dense layers (mean and log-std heads as one) and of both
    critics'."""
    actor = list(itertools.pairwise([obs_dim, *config.hidden_sizes, 2 * action_dim]))
    critic = list(itertools.pairwise([obs_dim + action_dim, *config.hidden_sizes, 1]))
    return actor + critic * 2


def dqn_layer_shapes(config: dqn.DQNConfig, obs_dim: int, actions: int) -> list[tuple[int, int]]:
    """(in, out) of the Q network's dense layers, counted twice: the online network (forward
    and backward) and the target network (forward only) together do about as many products as
    two networks forward and backward."""
    sizes = [obs_dim, *config.hidden_sizes, actions]
    return list(itertools.pairwise(sizes)) * 2


def layer_shapes(config: ppo.PPOConfig, obs_dim: int, actions: int) -> list[tuple[int, int]]:
    """(in, out) of every dense layer of the actor and the critic."""
    widths = list(config.hidden_sizes)
    shapes = []
    for out in (actions, 1):
        sizes = [obs_dim, *widths, out]
        shapes += list(itertools.pairwise(sizes))
    return shapes


def matmul_rate(shapes: list[tuple[int, int]], rows: int, devices: int, reps: int = 400) -> float:
    """FLOP/s of the forward and backward products of `shapes` at `rows` rows, run on
    `devices` devices at once (one independent copy each)."""
    key = jax.random.PRNGKey(0)
    xs = [jax.random.normal(key, (devices, rows, i)) for i, _ in shapes]
    ws = [jax.random.normal(key, (devices, i, o)) * 0.01 for i, o in shapes]
    gs = [jax.random.normal(key, (devices, rows, o)) for _, o in shapes]

    def one(xs, ws, gs):
        def body(carry, _):
            acc = carry
            for x, w, g in zip(xs, ws, gs, strict=True):
                y = (x + acc) @ w  # forward
                dw = (x + acc).T @ g  # weight gradient
                dx = g @ w.T  # input gradient
                acc = acc + 1e-9 * (y.sum() + dw.sum() + dx.sum())
            return acc, None

        return jax.lax.scan(body, jnp.zeros(()), None, length=reps)[0]

    mesh = Mesh(np.array(jax.devices()[:devices]), ("d",))
    sharded = NamedSharding(mesh, PartitionSpec("d"))
    fn = jax.jit(jax.vmap(one), in_shardings=sharded, out_shardings=sharded)
    args = jax.device_put((xs, ws, gs), sharded)
    compiled = fn.lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    per_rep = sum(3 * 2 * rows * i * o for i, o in shapes) * devices
    return per_rep * reps / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--workload",
        choices=["ppo-cartpole", "dqn-cartpole", "sac-pendulum"],
        default="ppo-cartpole",
    )
    args = parser.parse_args()
    spec = registry.resolve("CartPole-v1").spec
    devices = len(jax.devices())
    if args.workload == "ppo-cartpole":
        config = ppo.PPOConfig()
        shapes = layer_shapes(config, spec.obs_shape[0], spec.action_space.n)
        rows, cost = config.minibatch_size, ppo_flops_per_env_step(config)
    elif args.workload == "dqn-cartpole":
        shapes = dqn_layer_shapes(DQN_W2, spec.obs_shape[0], spec.action_space.n)
        rows, cost = DQN_W2.batch_size, dqn_flops_per_env_step(DQN_W2)
    else:
        shapes = sac_layer_shapes(SAC_W3, 3, 1)
        rows, cost = SAC_W3.batch_size, sac_flops_per_env_step(SAC_W3)
    result = {
        "flops": cost,
        "matmul_flops_per_s_one_device": matmul_rate(shapes, rows, 1),
        "matmul_flops_per_s_all_devices": matmul_rate(shapes, rows, devices),
        "devices": devices,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
