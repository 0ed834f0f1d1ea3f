"""The physical limit for PPO on CartPole: FLOPs per env step, and this machine's matmul rate.

- FLOPs per environment step come from XLA's cost analysis of the compiled pieces of one PPO
  update (XLA counts a loop body once, so the pieces are compiled without loops and weighed by
  how often an update runs them): acting and stepping the envs T times, K * M minibatch gradient
  steps (forward, backward, clipping, Adam), and the value pass over the rollout.
- The attainable matmul rate is measured for the same layer shapes (the minibatch's forward and
  backward products), on one device and on all devices at once (seeds sharded over cores).

Prints one JSON object.
"""

from __future__ import annotations

import itertools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import bellman  # noqa: F401  (sets bellman's XLA flags before JAX starts)
from bellman.algos import ppo
from bellman.envs import EpisodeStatistics, registry


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
        lambda f, o, mb: ppo._minibatch_step(config, spec, unravel, 1e-3, (f, o), mb),
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
    config = ppo.PPOConfig()
    spec = registry.resolve("CartPole-v1").spec
    shapes = layer_shapes(config, spec.obs_shape[0], spec.action_space.n)
    devices = len(jax.devices())
    result = {
        "flops": ppo_flops_per_env_step(config),
        "matmul_flops_per_s_one_device": matmul_rate(shapes, config.minibatch_size, 1),
        "matmul_flops_per_s_all_devices": matmul_rate(shapes, config.minibatch_size, devices),
        "devices": devices,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
