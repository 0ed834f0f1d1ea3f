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

from bellman.envs import options, registry, sim2real, sim2real_host
from bellman.envs.spaces import Box, Discrete
from bellman.errors import ConfigError, EnvError
from bellman.experiment.policy import open_run
from bellman.experiment.robustness import gymnax_base
from bellman.experiment.rundir import write_json
from bellman.runners.common import env_action

ITERATIONS = 2000
"""Adam steps of the gradient fit, by default."""
HOST_GENERATIONS = 30
"""CMA-ES generations of the host fit, by default."""
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
    iterations: int | None = None,
    learning_rate: float = 0.05,
    seed: int = 0,
    trust_env: bool = False,
) -> dict[str, Any]:
    """Record `episodes` episodes of the run's policy in the env with the parameters `real`
    (name=value,...), fit the parameters `params` (comma-separated names) and return the
    estimates, their errors and the fit's loss; written to RUN_DIR/identify/<time>.json.
    `iterations`: Adam steps (default ITERATIONS), or CMA-ES generations for a MuJoCo env on
    the gymnasium backend (`identify_host`, default HOST_GENERATIONS)."""
    if not 1 <= episodes <= MAX_EPISODES:
        raise ConfigError(f"episodes must be from 1 to {MAX_EPISODES:,}, not {episodes!r}")
    if iterations is not None and not 1 <= iterations <= MAX_ITERATIONS:
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
    if trained.info.family == "control":
        raise EnvError(f"{trained.info.name} is a planner; identify records with a policy")
    if env.backend == "gymnasium" and registry.is_mujoco(env.spec):
        generations = HOST_GENERATIONS if iterations is None else iterations
        return identify_host(trained, real, names, episodes, noise, generations, seed)
    iterations = ITERATIONS if iterations is None else iterations
    if env.backend != "compiled" or env.jax_env is None:
        raise EnvError(
            f"identify fits a gymnax env's parameters, or a MuJoCo model's on the gymnasium "
            f"backend; this run trained on '{env.id}' on the {env.backend} backend"
        )
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


# ----- MuJoCo models on the host: CMA-ES -----

HOST_TRANSITIONS = 2000
"""The recorded transitions the host fit replays per candidate (a random subset)."""
HOST_POPULATION = 16


def identify_host(
    trained: Any,
    real: str,
    names: list[str],
    episodes: int,
    noise: float,
    generations: int,
    seed: int,
) -> dict[str, Any]:
    """A MuJoCo env's model factors (`bellman.envs.sim2real_host`: one factor per quantity,
    all bodies' masses by the same factor, say) fitted by CMA-ES: the real system is the model
    scaled by `real`; a candidate is scored by replaying recorded transitions from their
    MuJoCo states (qpos, qvel) through the candidate model (one-step error of the next
    observation). `generations` generations of HOST_POPULATION candidates, on log-factors."""
    from evosax import algorithms as evosax_algorithms

    env, settings = trained.env, trained.settings
    factors = {n: float(v) for n, v in options.parse(real, "real").items()}
    sim2real_host.check_names(env.id, {n: (v, v) for n, v in factors.items()})
    sim2real_host.check_names(env.id, {n: (1.0, 1.0) for n in names})
    nominal = registry.resolve(settings.env, "gymnasium", settings.env_params, settings.env_kwargs)
    assert nominal.make_gym is not None
    ranges = {n: (v, v) for n, v in factors.items()}
    real_env = sim2real_host.randomized_factory(nominal.make_gym, ranges)()
    module, config, spec = trained.info.module, trained.config, env.spec
    state = jax.tree.map(lambda x: x[0], trained.algo_state)
    greedy = jax.jit(lambda obs: module.greedy(config, spec, state, obs[None])[0])
    rng = np.random.default_rng(seed)
    space = spec.action_space
    assert isinstance(space, Box)
    low, high = np.asarray(space.low), np.asarray(space.high)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    try:
        for episode in range(episodes):
            obs, _ = real_env.reset(seed=seed + episode)
            done = False
            while not done:
                model_env: Any = real_env.unwrapped
                qpos, qvel = model_env.data.qpos.copy(), model_env.data.qvel.copy()
                action = np.asarray(greedy(jnp.asarray(obs, jnp.float32)), np.float64)
                action = np.clip(action + noise * (high - low) / 2 * rng.normal(size=action.shape),
                                 low, high)  # fmt: skip
                obs, _, terminated, truncated, _ = real_env.step(action.astype(np.float32))
                rows.append((qpos, qvel, action, np.asarray(obs, np.float64)))
                done = terminated or truncated
    finally:
        real_env.close()
    picked = rng.choice(len(rows), min(HOST_TRANSITIONS, len(rows)), replace=False)
    sample = [rows[i] for i in picked]
    sim = sim2real_host.MujocoRandomization(nominal.make_gym(), {n: (1.0, 1.0) for n in names})
    sim.reset(seed=seed)
    inner: Any = sim.env.unwrapped  # a gymnasium MujocoEnv

    def loss(log_factors: np.ndarray) -> float:
        sim.set_factors(dict(zip(names, np.exp(log_factors), strict=True)))
        total = 0.0
        for qpos, qvel, action, next_obs in sample:
            inner.set_state(qpos, qvel)
            inner.do_simulation(action, inner.frame_skip)
            total += float(np.sum((inner._get_obs() - next_obs) ** 2))
        return total / len(sample)

    es = evosax_algorithms.CMA_ES(HOST_POPULATION, jnp.zeros(len(names)))
    params = es.default_params.replace(std_init=0.3)
    key = jax.random.PRNGKey(seed)
    key, init_key = jax.random.split(key)
    es_state = es.init(init_key, jnp.zeros(len(names)), params)
    history = [loss(np.zeros(len(names)))]
    try:
        for _ in range(generations):
            key, ask_key, tell_key = jax.random.split(key, 3)
            population, es_state = es.ask(ask_key, es_state, params)
            fitness = jnp.asarray([loss(np.asarray(x, np.float64)) for x in population])
            es_state, _ = es.tell(tell_key, population, fitness, es_state, params)
            history.append(float(fitness.min()))
        best = np.asarray(es_state.mean, np.float64)
        history.append(loss(best))
    finally:
        sim.close()
    found = {n: float(np.exp(v)) for n, v in zip(names, best, strict=True)}
    truth = {n: factors.get(n, 1.0) for n in names}
    result: dict[str, Any] = {
        "run_dir": str(trained.run_dir.path),
        "env": env.id,
        "method": "cma-es",
        "real": factors,
        "episodes": episodes,
        "transitions": len(rows),
        "replayed": len(sample),
        "noise": noise,
        "iterations": generations,
        "start": {n: 1.0 for n in names},
        "estimate": found,
        "true": truth,
        "relative_error": {n: abs(found[n] - truth[n]) / truth[n] for n in names},
        "loss": history,
        "env_params": None,
        "randomize": ",".join(f"{n}={found[n]:.6g}:{found[n]:.6g}" for n in names),
    }
    folder = trained.run_dir.path / "identify"
    folder.mkdir(exist_ok=True)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    result["file"] = str(path)
    write_json(path, result)
    return result
