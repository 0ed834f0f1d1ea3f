"""Robustness maps: a trained policy evaluated over a grid of the simulator's parameters.

`bellman eval RUN_DIR --params-grid m=0.5:2.0:9,l=0.7:1.3:7` evaluates the greedy policy of every
seed at every point of the grid (9 x 7 here) and at the run's nominal parameters, in one compiled
program: the grid points and the seeds are two vmapped axes of the same evaluation. The run's
other sim-to-real wrappers (noise, delay) stay; its randomisation does not (each cell is one
fixed simulator).

A cell *holds* when its mean return is at least the nominal return less a tenth of its size,
R >= R_nom - 0.1 |R_nom|: 90% of a positive nominal return (CartPole), and no more than 10% more
cost for a negative one (Pendulum). The map is written to RUN_DIR/robustness/ as JSON, CSV and
a heat map whose held cells are outlined.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bellman.envs import registry, sim2real, sim2real_host
from bellman.envs.gymnax_env import GymnaxEnv
from bellman.errors import ConfigError, EnvError
from bellman.experiment.policy import open_run
from bellman.experiment.rundir import write_json
from bellman.experiment.settings import check_evaluation_request
from bellman.experiment.train import eval_env_seed, eval_keys
from bellman.runners.evaluation import evaluate_gymnasium, evaluate_jax

HOLD = 0.1
"""A cell holds within this fraction of the nominal return's size."""
MAX_POINTS = 10_000


def parse_grid(text: str) -> dict[str, np.ndarray]:
    """`name=low:high:n,...` -> name -> n evenly spaced values from low to high (one or two
    names: the map's axes)."""
    grid: dict[str, np.ndarray] = {}
    for item in text.split(","):
        name, sep, spec = item.partition("=")
        name = name.strip()
        parts = spec.split(":")
        if not sep or not name.isidentifier() or len(parts) != 3:
            raise ConfigError(
                f"--params-grid takes name=low:high:n pairs separated by commas, not "
                f"'{item.strip()}'"
            )
        if name in grid:
            raise ConfigError(f"--params-grid gives '{name}' twice")
        try:
            low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(
                f"--params-grid {name} takes low:high:n (two numbers and a whole number), not "
                f"'{spec.strip()}'"
            ) from None
        if not (np.isfinite(low) and np.isfinite(high)) or low > high or count < 1:
            raise ConfigError(
                f"--params-grid {name} needs finite low <= high and n >= 1, not '{spec.strip()}'"
            )
        grid[name] = np.linspace(low, high, count)
    if len(grid) > 2:
        raise ConfigError(
            f"--params-grid maps one or two parameters (the heat map's axes), not {len(grid)}"
        )
    points = int(np.prod([len(v) for v in grid.values()]))
    if points > MAX_POINTS:
        raise ConfigError(f"--params-grid has {points:,} points; at most {MAX_POINTS:,}")
    return grid


def gymnax_base(env: Any) -> GymnaxEnv:
    """The gymnax env inside a run's (possibly wrapped) JAX env."""
    while not isinstance(env, GymnaxEnv):
        inner = getattr(env, "env", None)
        if inner is None:
            raise EnvError(
                "--params-grid sets gymnax parameters (CartPole-v1, Pendulum-v1, ...); this run's "
                "env has none"
            )
        env = inner
    return env


def held(returns: np.ndarray, nominal: float) -> np.ndarray:
    """Which cells keep the nominal return within HOLD of its size."""
    return returns >= nominal - HOLD * abs(nominal)


def robustness_map(
    run_dir: str | Path,
    grid_text: str,
    episodes: int = 20,
    seed: int = 0,
    trust_env: bool = False,
    checkpoint: str | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Every seed's greedy return at every point of `grid_text` and at the nominal parameters;
    with `write`, the map's JSON, CSV and heat map in RUN_DIR/robustness/."""
    check_evaluation_request(episodes, seed, None)
    grid = parse_grid(grid_text)
    trained = open_run(run_dir, None, trust_env=trust_env, checkpoint=checkpoint)
    env = trained.env
    if trained.info.family == "control":
        raise EnvError(
            f"{trained.info.name} plans with a model of the env it trained on; --params-grid "
            "evaluates policies"
        )
    if env.backend == "gymnasium" and registry.is_mujoco(env.spec):
        return host_map(trained, grid, episodes, seed, write)
    if env.backend != "compiled" or env.jax_env is None:
        raise EnvError(
            "--params-grid evaluates a policy in a compiled gymnax env, or a MuJoCo env on the "
            f"gymnasium backend; this run trained on '{env.id}' on the {env.backend} backend"
        )
    base = gymnax_base(env.jax_env)
    sim2real.check_randomizable(env.id, base.params, {name: (0.0, 0.0) for name in grid})
    nominal = {name: float(getattr(base.params, name)) for name in grid}
    names = list(grid)
    mesh = np.meshgrid(*grid.values(), indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)  # [cells, names]
    points = np.concatenate([points, np.array([[nominal[n] for n in names]])])
    fixed = sim2real.SimSettings(
        None,
        trained.settings.obs_noise,
        trained.settings.action_noise,
        trained.settings.action_delay,
    )
    module, config, spec_id = trained.info.module, trained.config, env.id

    def one(values: jax.Array, algo_state: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        params = dict(zip(names, values, strict=True))
        params = sim2real.with_derived(spec_id, base.params.replace(**params))
        cell_env = sim2real.wrap(base.with_params(params), fixed)
        return evaluate_jax(module, config, cell_env, algo_state, key, episodes)

    over_seeds = jax.vmap(one, in_axes=(None, 0, 0))
    over_grid = jax.jit(jax.vmap(over_seeds, in_axes=(0, None, None)))
    seeds = trained.settings.seeds
    keys = eval_keys(seed, seeds, 2**30)
    returns, _ = over_grid(jnp.asarray(points, jnp.float32), trained.algo_state, keys)
    returns = np.asarray(returns, np.float64)  # [points, seeds, episodes]
    return summarize(trained, grid, nominal, returns, episodes, write)


def host_map(
    trained: Any, grid: dict[str, np.ndarray], episodes: int, seed: int, write: bool
) -> dict[str, Any]:
    """The map of a MuJoCo run on the gymnasium backend: the grid's values are factors of the
    model's own (`bellman.envs.sim2real_host`), one cell after another."""
    env, settings = trained.env, trained.settings
    sim2real_host.check_names(env.id, {n: (float(v.min()), 1.0) for n, v in grid.items()})
    nominal_env = registry.resolve(
        settings.env, "gymnasium", settings.env_params, settings.env_kwargs
    )
    assert nominal_env.make_gym is not None
    names = list(grid)
    mesh = np.meshgrid(*grid.values(), indexing="ij")
    points = [*np.stack([m.ravel() for m in mesh], axis=1), np.ones(len(names))]
    rows = []
    for point in points:
        ranges = {n: (float(v), float(v)) for n, v in zip(names, point, strict=True)}
        returns, _ = evaluate_gymnasium(
            trained.info.module,
            trained.config,
            env.spec,
            env.id,
            sim2real_host.randomized_factory(nominal_env.make_gym, ranges),
            trained.algo_state,
            episodes,
            seed=eval_env_seed(seed, 2**30),
        )
        rows.append(returns)
    nominal = {name: 1.0 for name in names}
    return summarize(trained, grid, nominal, np.stack(rows), episodes, write)


def summarize(
    trained: Any,
    grid: dict[str, np.ndarray],
    nominal: dict[str, float],
    returns: np.ndarray,
    episodes: int,
    write: bool,
) -> dict[str, Any]:
    """The map's record from returns `[points + 1, seeds, episodes]` (the nominal point last)."""
    returns = returns.mean(axis=2)
    seeds = returns.shape[1]
    shape = tuple(len(v) for v in grid.values())
    per_seed = returns[:-1].reshape(*shape, seeds)
    mean = per_seed.mean(axis=-1)
    nominal_return = float(returns[-1].mean())
    holds = held(mean, nominal_return)
    env = trained.env
    result: dict[str, Any] = {
        "run_dir": str(trained.run_dir.path),
        "algo": trained.info.name,
        "env": env.id,
        "randomize": trained.settings.randomize,
        "episodes": episodes,
        "seeds": seeds,
        "grid": {name: values.tolist() for name, values in grid.items()},
        "nominal": nominal,
        "nominal_return": nominal_return,
        "return_mean": mean.tolist(),
        "return_per_seed": per_seed.tolist(),
        "held": holds.tolist(),
        "held_fraction": float(holds.mean()),
        "files": [],
    }
    if write:
        result["files"] = write_map(trained.run_dir.path, result)
    return result


def write_map(run_dir: Path, result: dict[str, Any]) -> list[str]:
    """RUN_DIR/robustness/<params>-<time>.{json,csv,png}; their paths."""
    folder = run_dir / "robustness"
    folder.mkdir(exist_ok=True)
    stem = "-".join(result["grid"]) + "-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path, csv_path, png_path = (folder / f"{stem}{ext}" for ext in (".json", ".csv", ".png"))
    names = list(result["grid"])
    mean, holds = np.asarray(result["return_mean"]), np.asarray(result["held"])
    rows = [",".join([*names, "return_mean", "held"])]
    for index in np.ndindex(mean.shape):
        values = [f"{result['grid'][n][i]:.6g}" for n, i in zip(names, index, strict=True)]
        rows.append(",".join([*values, f"{mean[index]:.6g}", str(bool(holds[index]))]))
    csv_path.write_text("\n".join(rows) + "\n")
    plot_map(result, png_path)
    write_json(json_path, {**result, "files": [str(json_path), str(csv_path), str(png_path)]})
    return [str(json_path), str(csv_path), str(png_path)]


def plot_map(
    result: dict[str, Any],
    path: Path | None = None,
    ax: Any = None,
    limits: tuple[float, float] | None = None,
) -> None:
    """The heat map of mean return over the grid, held cells outlined, the nominal point marked;
    on `ax` if given (side-by-side figures, sharing the colour scale `limits`), else saved to
    `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["grid"])
    mean = np.asarray(result["return_mean"], np.float64)
    if mean.ndim == 1:
        mean = mean[:, None]
    holds = np.asarray(result["held"]).reshape(mean.shape)
    xs = np.asarray(result["grid"][names[0]])
    ys = np.asarray(result["grid"][names[1]]) if len(names) > 1 else np.zeros(1)
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6, 4.8))
    low, high = limits if limits is not None else (None, None)
    image = ax.imshow(mean.T, origin="lower", aspect="auto", cmap="viridis", vmin=low, vmax=high)
    ax.figure.colorbar(image, ax=ax, label="mean greedy return")
    for i, j in zip(*np.nonzero(holds), strict=True):
        ax.add_patch(
            matplotlib.patches.Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, ec="white", lw=1.5)
        )
    ax.set_xticks(range(len(xs)), [f"{x:.3g}" for x in xs], rotation=45)
    ax.set_xlabel(names[0])
    if len(names) > 1:
        ax.set_yticks(range(len(ys)), [f"{y:.3g}" for y in ys])
        ax.set_ylabel(names[1])
        nominal = result["nominal"]
        fx = np.interp(nominal[names[0]], xs, np.arange(len(xs)))
        fy = np.interp(nominal[names[1]], ys, np.arange(len(ys)))
        ax.plot([fx], [fy], marker="x", color="red", ms=10, mew=2)
    else:
        ax.set_yticks([])
    trained_on = "randomized" if result.get("randomize") else "nominal"
    ax.set_title(
        f"{result['algo']} on {result['env']} ({trained_on}): "
        f"{100 * result['held_fraction']:.0f}% of cells hold"
    )
    if own:
        assert path is not None
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
