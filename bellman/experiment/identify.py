"""System identification: the simulator's parameters estimated from the real system's trajectories.

    bellman identify RUN_DIR --real m=1.3,l=0.8 --params m,l [--episodes 10] [--noise 0.3]

The "real system" is the run's gymnax env with parameters the learner is not told (`--real`).
A trained policy (seed 0's greedy action, with exploration noise so that the data excite the
dynamics) records `episodes` episodes there: each step's state s_t, action a_t and the
observation o_{t+1} it led to. The parameters named by `--params` are then fitted by gradient
descent through the JAX env's own step function,

    theta* = argmin_theta  mean_t || f_theta(s_t, a_t) - o_{t+1} ||^2,

each parameter written as its simulator value times exp(z) (z = 0 at the start: the simulator's
value, positive throughout, every parameter on the same scale), with Adam on z. The estimate is
what `--env-params` takes, to evaluate the policy on the identified model or to fine-tune it
there (`bellman train ... --env-params <estimate> --init-from RUN_DIR`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bellman.envs import options, sim2real
from bellman.envs.spaces import Box, Discrete
from bellman.errors import ConfigError, EnvError
from bellman.experiment.policy import open_run
from bellman.experiment.robustness import gymnax_base
from bellman.experiment.rundir import write_json
from bellman.runners.common import env_action

MAX_EPISODES = 10_000
MAX_ITERATIONS = 1_000_000


def explore(spec: Any, action: jax.Array, noise: float, key: jax.Array) -> jax.Array:
    """The policy's action with exploration: Gaussian noise of `noise` x half the box's width
    (then clipped) for continuous actions, a uniformly random action with probability `noise`
    for discrete ones."""
    space = spec.action_space
    if isinstance(space, Discrete):
        swap_key, action_key = jax.random.split(key)
        other = jax.random.randint(action_key, action.shape, 0, space.n, action.dtype)
        return jnp.where(jax.random.uniform(swap_key, action.shape) < noise, other, action)
    assert isinstance(space, Box)
    low = jnp.asarray(space.low, jnp.float32).reshape(space.shape)
    high = jnp.asarray(space.high, jnp.float32).reshape(space.shape)
    scale = jnp.where(jnp.isfinite(high - low), (high - low) / 2, 1.0)
    return action + noise * scale * jax.random.normal(key, action.shape)


def record(
    module: Any,
    config: Any,
    base: Any,
    algo_state: Any,
    params: Any,
    episodes: int,
    noise: float,
    key: jax.Array,
) -> dict[str, Any]:
    """`episodes` episodes of the policy (one seed's `algo_state`) in `base` with `params`:
    states [T, E, ...], actions [T, E, ...], next observations [T, E, ...], valid [T, E]."""
    spec = base.spec
    length = spec.max_episode_steps or 1000
    reset_key, key = jax.random.split(key)
    state, ts = jax.vmap(lambda k: base.reset_with(k, params))(
        jax.random.split(reset_key, episodes)
    )

    def step(carry: Any, key: jax.Array) -> tuple[Any, Any]:
        state, obs, alive = carry
        noise_key, step_key = jax.random.split(key)
        action = explore(spec, module.greedy(config, spec, algo_state, obs), noise, noise_key)
        action = env_action(spec, action)
        new_state, ts = jax.vmap(lambda k, s, a: base.step_with(k, s, a, params))(
            jax.random.split(step_key, episodes), state, action
        )
        out = {"state": state, "action": action, "next_obs": ts.final_obs, "valid": alive}
        return (new_state, ts.obs, alive & ~ts.done), out

    alive = jnp.ones((episodes,), bool)
    _, data = jax.lax.scan(step, (state, ts.obs, alive), jax.random.split(key, length))
    return data


def fit(
    base: Any,
    data: dict[str, Any],
    names: list[str],
    iterations: int,
    learning_rate: float,
) -> tuple[dict[str, float], list[float]]:
    """The parameters `names` minimising the one-step prediction error on `data` (each the
    simulator's value x exp(z), Adam on z from 0), and the loss every 1% of the iterations."""
    start = {name: float(getattr(base.params, name)) for name in names}
    flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), data)
    weight = flat["valid"].astype(jnp.float32)
    weight = weight / jnp.maximum(weight.sum(), 1.0)
    key = jax.random.PRNGKey(0)  # gymnax's classic-control steps do not draw

    def values(z: jax.Array) -> dict[str, jax.Array]:
        return {n: start[n] * jnp.exp(z[i]) for i, n in enumerate(names)}

    def loss(z: jax.Array) -> jax.Array:
        params = sim2real.with_derived(base.spec.id, base.params.replace(**values(z)))
        _, ts = jax.vmap(lambda s, a: base.step_with(key, s, a, params))(
            flat["state"], flat["action"]
        )
        error = jnp.sum((ts.final_obs - flat["next_obs"]) ** 2, axis=-1)
        return jnp.sum(weight * error)

    optimizer = optax.adam(learning_rate)
    every = max(1, iterations // 100)

    @jax.jit
    def run(z: jax.Array) -> tuple[jax.Array, jax.Array]:
        def update(carry: Any, _: Any) -> tuple[Any, jax.Array]:
            z, opt = carry
            value, grad = jax.value_and_grad(loss)(z)
            step, opt = optimizer.update(grad, opt)
            return (optax.apply_updates(z, step), opt), value

        z0 = (z, optimizer.init(z))
        (z, _), losses = jax.lax.scan(update, z0, None, length=iterations)
        return z, losses

    z, losses = run(jnp.zeros(len(names), jnp.float32))
    found = {n: float(v) for n, v in values(z).items()}
    history = [*np.asarray(losses)[::every].tolist(), float(loss(z))]
    return found, history


def identify(
    run_dir: str | Path,
    real: str,
    params: str,
    episodes: int = 10,
    noise: float = 0.3,
    iterations: int = 2000,
    learning_rate: float = 0.05,
    seed: int = 0,
    trust_env: bool = False,
) -> dict[str, Any]:
    """Record `episodes` episodes of the run's policy in the env with the parameters `real`
    (name=value,...), fit the parameters `params` (comma-separated names) and return the
    estimates, their errors and the fit's loss; written to RUN_DIR/identify/<time>.json."""
    if not 1 <= episodes <= MAX_EPISODES:
        raise ConfigError(f"episodes must be from 1 to {MAX_EPISODES:,}, not {episodes!r}")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ConfigError(f"iterations must be from 1 to {MAX_ITERATIONS:,}, not {iterations!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ConfigError(f"noise must be a finite number >= 0, not {noise!r}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ConfigError(f"learning_rate must be a positive number, not {learning_rate!r}")
    names = [n.strip() for n in params.split(",") if n.strip()]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"--params takes parameter names separated by commas, not '{params}'")
    trained = open_run(run_dir, None, trust_env=trust_env)
    env = trained.env
    if env.backend != "compiled" or env.jax_env is None:
        raise EnvError(
            f"identify fits a gymnax env's parameters; this run trained on '{env.id}' on the "
            f"{env.backend} backend"
        )
    if trained.info.family == "control":
        raise EnvError(f"{trained.info.name} is a planner; identify records with a policy")
    base = gymnax_base(env.jax_env)
    if not base.differentiable:
        raise EnvError(
            f"gymnax's {env.id} stops gradients at its step, and identify fits by gradient "
            "descent through the dynamics: it identifies Pendulum-v1, MountainCarContinuous-v0 "
            "and the other gymnax envs with differentiable steps"
        )
    sim2real.check_randomizable(env.id, base.params, {n: (0.0, 0.0) for n in names})
    for name in names:
        if not float(getattr(base.params, name)) > 0:
            raise ConfigError(
                f"identify fits positive parameters from their simulator values; {name} is "
                f"{getattr(base.params, name)}"
            )
    real_params, real_record = options.gymnax_params(
        env.id, base.params, options.parse(real, "real")
    )
    state = jax.tree.map(lambda x: x[0], trained.algo_state)  # seed 0's policy
    key = jax.random.PRNGKey(seed)
    data = record(
        trained.info.module, trained.config, base, state, real_params, episodes, noise, key
    )
    found, history = fit(base.with_gradients(), data, names, iterations, learning_rate)
    truth = {n: float(getattr(real_params, n)) for n in names}
    result: dict[str, Any] = {
        "run_dir": str(trained.run_dir.path),
        "env": env.id,
        "real": real_record,
        "episodes": episodes,
        "transitions": int(np.asarray(data["valid"]).sum()),
        "noise": noise,
        "iterations": iterations,
        "learning_rate": learning_rate,
        "start": {n: float(getattr(base.params, n)) for n in names},
        "estimate": found,
        "true": truth,
        "relative_error": {
            n: abs(found[n] - truth[n]) / abs(truth[n]) if truth[n] else None for n in names
        },
        "loss": history,
        "env_params": ",".join(f"{n}={found[n]:.6g}" for n in names),
    }
    folder = trained.run_dir.path / "identify"
    folder.mkdir(exist_ok=True)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    result["file"] = str(path)
    write_json(path, result)
    return result
