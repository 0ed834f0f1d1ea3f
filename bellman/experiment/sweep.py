"""`bellman sweep`: many settings of one algorithm on one env, as few compiled programs as the
settings allow.

    settings  = the grid's product (--grid name=v1,v2,...), or N draws from ranges (--random N)
    configs   = the algorithm's config with each setting applied (checked before anything runs)
    groups    = the configs by static part (`bellman.config.static_part`): a group's configs
                differ only in traced settings, so K configs x S seeds run as ONE program
    for each group: `Trainer` with one run directory per config (the usual contents)
    table     = per setting: the seeds' final returns, mean, IQM, a 95% bootstrap interval of
                the IQM, the area under the learning curve, wall time -> sweep.json, sweep.csv,
                sweep.png

The sweep directory holds sweep.json (what was asked, then the table), sweep.csv, sweep.png and
runs/NNN-<setting>/ (run directories). Running the same command again resumes it: finished runs
are kept, the others continue from their checkpoints (a group from the newest update all its
runs have).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bellman import algos, jax_setup, stats
from bellman import config as cfg
from bellman.envs import registry
from bellman.errors import ConfigError, RunDirError, closest
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.plots import band
from bellman.experiment.policy import read_saved
from bellman.experiment.rundir import RunDir, jsonable, write_json
from bellman.experiment.settings import Plan, RunSettings, check_resources, resolve_env
from bellman.experiment.train import (
    Interrupted,
    Trainer,
    check_first_seed,
    preset_config,
    run_record,
)

SWEEP = "sweep.json"
TABLE = "sweep.csv"
PLOT = "sweep.png"
RANDOM_SEED_OFFSET = 0x5EED
"""Random settings are drawn from PRNG(seed + this), so they do not follow the runs' keys."""


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: the overridden fields, and its run directory's name."""

    index: int
    values: dict[str, Any]

    @property
    def label(self) -> str:
        return ",".join(f"{name}={_show(v)}" for name, v in self.values.items()) or "defaults"

    @property
    def dirname(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.=,+-]", "-", self.label)[:80]
        return f"{self.index:03d}-{slug}"


@dataclass
class SweepResult:
    """A finished sweep: its directory and one row per setting (as in sweep.json)."""

    path: Path
    rows: list[dict[str, Any]]
    groups: int
    """Compiled programs the sweep ran (groups of settings that differ only in traced ones)."""
    wall_s: float

    def best(self) -> dict[str, Any]:
        """The row of the setting with the highest IQM of final returns."""
        finite = [r for r in self.rows if math.isfinite(r["iqm"])]
        return max(finite or self.rows, key=lambda r: r["iqm"] if math.isfinite(r["iqm"]) else -1)


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_grid(items: Sequence[str], fields: dict[str, Any]) -> dict[str, list[Any]]:
    """`name=v1,v2,...` items -> {name: [values]}, each value of the field's type."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, values = _split(item, "grid", "name=v1,v2,...")
        _check_name(name, fields)
        if name in grid:
            raise ConfigError(f"--grid names {name} twice; give all its values in one item")
        texts = [v.strip() for v in values.split(",") if v.strip()]
        if not texts:
            raise ConfigError(f"--grid {name}= has no values (name=v1,v2,...)")
        grid[name] = [cfg.coerce(name, fields[name], text) for text in texts]
    return grid


def parse_ranges(items: Sequence[str], fields: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`name=low:high` items -> {name: (low, high)} of the field's type."""
    ranges: dict[str, tuple[Any, Any]] = {}
    for item in items:
        name, bounds = _split(item, "range", "name=low:high")
        _check_name(name, fields)
        low_text, sep, high_text = bounds.partition(":")
        if not sep:
            raise ConfigError(f"--range {item} must be name=low:high")
        kind = fields[name]
        if kind not in (int, float):
            raise ConfigError(f"--range {name}: only numeric settings have ranges (use --grid)")
        low, high = (cfg.coerce(name, kind, t.strip()) for t in (low_text, high_text))
        if not low < high:
            raise ConfigError(f"--range {name}: low must be below high, not {low}:{high}")
        ranges[name] = (low, high)
    return ranges


def grid_of(grid: dict[str, Sequence[Any]] | Sequence[str], fields: dict[str, Any]) -> dict:
    """A grid given from Python ({name: values}) or as `name=v1,v2` strings, checked."""
    if not isinstance(grid, dict):
        return parse_grid(grid, fields)
    for name in grid:
        _check_name(name, fields)
    return {k: [cfg.coerce(k, fields[k], v) for v in vs] for k, vs in grid.items()}


def ranges_of(ranges: dict[str, tuple[Any, Any]] | Sequence[str], fields: dict[str, Any]) -> dict:
    """Ranges given from Python ({name: (low, high)}) or as `name=low:high` strings, checked."""
    if not isinstance(ranges, dict):
        return parse_ranges(ranges, fields)
    return parse_ranges([f"{k}={lo}:{hi}" for k, (lo, hi) in ranges.items()], fields)


def _split(item: str, flag: str, form: str) -> tuple[str, str]:
    name, sep, rest = item.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--{flag} {item!r} must be {form}")
    return name.strip().replace("-", "_"), rest


def _check_name(name: str, fields: dict[str, Any]) -> None:
    if name not in fields:
        raise ConfigError(f"the algorithm has no setting '{name}'" + (closest(name, fields) or ""))


def draw(ranges: dict[str, tuple[Any, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` settings drawn from `ranges`: log-uniform for a positive range spanning a factor
    of 10 or more, else uniform; ints rounded."""
    rng = np.random.default_rng(seed + RANDOM_SEED_OFFSET)
    drawn = []
    for _ in range(count):
        values = {}
        for name, (low, high) in ranges.items():
            if low > 0 and high / low >= 10:
                x = math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                x = rng.uniform(low, high)
            values[name] = round(x) if isinstance(low, int) else float(f"{x:.4g}")
        drawn.append(values)
    return drawn


def settings_of(
    grid: dict[str, list[Any]], ranges: dict[str, tuple[Any, Any]], random: int | None, seed: int
) -> list[Setting]:
    """The grid's product, each combined with `random` draws from `ranges` when both are given
    (a grid alone, or draws alone, otherwise)."""
    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    if random:
        points = [{**p, **d} for p in points for d in draw(ranges, random, seed)]
    return [Setting(i, values) for i, values in enumerate(points)]


def default_sweep_dir(algo: str, env: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_env = "".join(c if c.isalnum() or c in "-_." else "-" for c in env)
    return Path("runs") / f"sweep-{algo}-{safe_env}-{stamp}"


def prepare(
    algo: str, env: Any, fixed: dict[str, Any], **run: Any
) -> tuple[algos.AlgoInfo, RunSettings, registry.ResolvedEnv, Any]:
    """The algorithm, checked run settings (`run`: RunSettings' fields), the resolved env and
    the config every setting starts from (the preset, with `fixed` applied)."""
    info = algos.get(algo)
    run_settings = cfg.with_overrides(RunSettings(env=registry.env_label(env)), run)
    run_settings.validate()
    if run_settings.init_from is not None:
        raise ConfigError(
            "init_from starts one run from another's state: use it with bellman train, without "
            "a sweep or seed groups"
        )
    run_settings, resolved = resolve_env(run_settings, run_settings.backend, env)
    check_first_seed(run_settings, resolved)
    base = cfg.with_overrides(preset_config(info, run_settings.preset, resolved.spec), fixed)
    return info, run_settings, resolved, base


def sweep(
    algo: str,
    env: Any,
    *,
    grid: dict[str, Sequence[Any]] | Sequence[str] = (),
    random: int | None = None,
    ranges: dict[str, tuple[Any, Any]] | Sequence[str] = (),
    steps: int | None = None,
    seeds: int = 1,
    seed: int = 0,
    first_seed: int = 0,
    backend: str = "auto",
    out: str | Path | None = None,
    eval_episodes: int = 20,
    evals: int = 10,
    log_every: int | None = None,
    checkpoint_every: int | None = None,
    preset: str | None = None,
    env_params: str | None = None,
    env_kwargs: str | None = None,
    randomize: str | None = None,
    obs_noise: float = 0.0,
    action_noise: float = 0.0,
    action_delay: int = 0,
    progress: bool = True,
    ray: str | None = None,
    ray_cpus: float = 1.0,
    ray_gpus: float = 0.0,
    **fixed: Any,
) -> SweepResult:
    """Train `algo` on `env` with every setting of the sweep, `seeds` seeds each, and write the
    sweep directory (see the module's docstring). `grid` maps setting names to values (or is a
    list of `name=v1,v2` strings); `random` draws that many settings from `ranges` (name ->
    (low, high), or `name=low:high` strings); `fixed` overrides apply to every setting. With
    `ray` (an address, or "auto"), the groups run as Ray Tune trials on that Ray cluster, each
    with `ray_cpus` CPUs and `ray_gpus` GPUs (`bellman.experiment.ray_sweep`). Running it again
    on the same `out` resumes it."""
    jax_setup.configure()
    start = time.perf_counter()
    info, run_settings, resolved, base = prepare(
        algo,
        env,
        fixed,
        steps=steps,
        seeds=seeds,
        seed=seed,
        first_seed=first_seed,
        backend=backend,
        eval_episodes=eval_episodes,
        evals=evals,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        preset=preset,
        env_params=env_params,
        env_kwargs=env_kwargs,
        randomize=randomize,
        obs_noise=obs_noise,
        action_noise=action_noise,
        action_delay=action_delay,
    )
    fields = cfg.field_types(type(base))
    grid_values, range_values = grid_of(grid, fields), ranges_of(ranges, fields)
    if random is not None:
        cfg.check_int("random", random, 1, 100_000, "a sweep draws 1 to 100,000 settings")
        if not range_values:
            raise ConfigError("--random N draws settings from ranges: give --range name=low:high")
    elif range_values:
        raise ConfigError("--range needs --random N (how many settings to draw)")
    if not grid_values and not random:
        raise ConfigError("a sweep needs settings: --grid name=v1,v2,... or --random N")
    both = set(grid_values) & set(range_values)
    if both:
        raise ConfigError(f"{', '.join(sorted(both))} is both in --grid and in --range")
    points = settings_of(grid_values, range_values, random, run_settings.seed)

    configs = []
    for point in points:
        config = cfg.with_overrides(base, point.values)
        try:
            config.validate()
        except ConfigError as exc:
            raise ConfigError(f"setting {point.label}: {exc}") from None
        info.module.check_env(config, resolved.spec)
        if info.fit_to_env is not None:
            config = info.fit_to_env(config, resolved.spec)
        configs.append(config)

    budget = run_settings.steps or info.module.DEFAULT_STEPS
    plans = [Plan.make(run_settings, budget, c.num_envs * c.num_steps) for c in configs]
    groups = group_settings(configs, resolved.backend == "compiled")
    for members in groups:
        size = dataclasses.replace(run_settings, seeds=run_settings.seeds * len(members))
        check_resources(info, configs[members[0]], resolved, size, plans[members[0]])

    path = (
        cfg.as_path("out", out)
        if out is not None
        else default_sweep_dir(info.name, run_settings.env)
    )
    request = {
        "algo": info.name,
        "env": run_settings.env,
        "backend": resolved.backend,
        "settings": cfg.to_dict(run_settings),
        "base_config": cfg.to_dict(base),
        "grid": grid_values,
        "ranges": {k: list(v) for k, v in range_values.items()},
        "random": random,
    }
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    runs = [
        {"label": p.label, "values": p.values, "run_dir": f"runs/{p.dirname}", "group": group_of[i]}
        for i, p in enumerate(points)
    ]
    open_sweep(path, request, runs)

    for i, run in enumerate(runs):
        make_run_dir(
            path / str(run["run_dir"]), info.name, run_settings, configs[i], resolved, plans[i]
        )
    unfinished = []
    for g, members in enumerate(groups):
        todo = [path / str(runs[i]["run_dir"]) for i in members]
        todo = [p for p in todo if not (p / "summary.json").exists()]
        if todo:
            label = f"group {g + 1}/{len(groups)}: {len(todo)} setting(s) x{run_settings.seeds}"
            unfinished.append((label, todo))
    try:
        run_groups(unfinished, path, ray, ray_cpus, ray_gpus, progress, env)
    except Interrupted as exc:
        raise Interrupted(
            f"stopped by {exc.signame}; the sweep is saved: continue it with the same "
            f"command (its directory is {path})",
            exc.signum,
        ) from None

    rows, curves = table(path, runs, run_settings.seeds)
    wall_s = time.perf_counter() - start
    write_results(path, request, rows, curves, len(groups), wall_s)
    return SweepResult(path, rows, len(groups), wall_s)


def group_settings(configs: Sequence[Any], compiled: bool) -> list[list[int]]:
    """The settings' indices by static part, in order of first appearance; on the gymnasium
    backend every setting is its own group."""
    if not compiled:
        return [[i] for i in range(len(configs))]
    groups: dict[Any, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(cfg.static_part(config), []).append(i)
    return list(groups.values())


def open_sweep(path: Path, request: dict[str, Any], runs: list[dict[str, Any]] | None) -> None:
    """Create the sweep directory, or check that an existing one was asked for the same (and,
    unless `runs` is None, a search's growing list, planned the same runs)."""
    record = path / SWEEP
    if record.exists():
        try:
            saved = json.loads(record.read_text())
        except (OSError, ValueError):
            raise RunDirError(f"{record} is unreadable or not valid JSON") from None
        same = {k: saved.get("request", {}).get(k) for k in request}
        planned = runs is None or read_back(saved.get("runs")) == read_back(runs)
        if read_back(same) != read_back(request) or not planned:
            raise RunDirError(
                f"{path} holds another sweep (its sweep.json asks for other settings); choose "
                "another --out, or repeat that sweep's command to resume it"
            )
        return
    if path.exists() and any(path.iterdir()):
        raise RunDirError(f"{path} already exists and is not a sweep; choose another --out")
    try:
        (path / "runs").mkdir(parents=True, exist_ok=True)
        write_json(record, {"request": request, "runs": runs or []})
    except OSError as exc:
        raise RunDirError(f"cannot create sweep directory {path}: {exc.strerror}") from None


def read_back(value: Any) -> Any:
    """`value` as it reads back from a JSON file (tuples as lists, ...)."""
    return json.loads(json.dumps(jsonable(value)))


def run_groups(
    groups: list[tuple[str, list[Path]]],
    path: Path,
    ray: str | None,
    ray_cpus: float,
    ray_gpus: float,
    progress: bool,
    env: Any,
) -> None:
    """Train each (label, run directories) group (`train_group`): one after another here, or
    as Ray Tune trials on the cluster at `ray`, writing Ray's files under `path`."""
    if ray is None:
        for label, paths in groups:
            train_group(paths, label=label, progress=progress, env=env)
        return
    from bellman.experiment import ray_sweep  # (it imports this module)

    ray_sweep.run_groups(
        groups,
        ray,
        cpus_per_trial=ray_cpus,
        gpus_per_trial=ray_gpus,
        progress=progress,
        env=env,
        ray_dir=path / ray_sweep.RAY_DIR,
    )


def make_run_dir(
    path: Path, algo: str, settings: RunSettings, config: Any, resolved: Any, plan: Plan
) -> None:
    """A setting's run directory, unless a killed sweep left it (it is resumed then)."""
    if not (path / "config.json").exists():
        RunDir.create(path, run_record(algo, settings, config, resolved, plan)).unlock()


def train_group(
    paths: Sequence[Path],
    *,
    label: str | None = None,
    progress: bool = True,
    env: Any = None,
    trust_env: bool = True,
    on_eval: Callable[[int, list[int], np.ndarray], Iterable[int]] | None = None,
) -> list[dict[str, Any]]:
    """Train the run directories `paths` side by side to the end of their plan, from their
    newest common checkpoint if they have one, and return their summaries. They must be one
    group: the same algorithm, env, run settings and plan, and configs that differ only in
    traced settings (`bellman.config.static_part`). This is all a process needs to run a group
    of a sweep, locally or on another machine (`bellman.experiment.ray_sweep`); `env` is the env
    object of a sweep given one, and `trust_env` lets a `module:attr` env be imported (the
    sweep's own run directories); `on_eval` is `Trainer`'s (a search's pruner)."""
    rds = [RunDir.open(Path(p)) for p in paths]
    locked: list[RunDir] = []
    try:
        for rd in rds:
            rd.lock()
            locked.append(rd)
        saved = [read_saved(rd, trust_env) for rd in rds]
        first = saved[0]
        for rd, other in zip(rds[1:], saved[1:], strict=True):
            same = (
                other.info.name == first.info.name
                and other.settings == first.settings
                and other.plan == first.plan
                and cfg.static_part(other.config) == cfg.static_part(first.config)
            )
            if not same:
                raise RunDirError(
                    f"{rd.path} does not belong with {rds[0].path}: a group's runs share the "
                    "algorithm, env, settings, plan and every static setting"
                )
        _, resolved = resolve_env(first.settings, rds[0].config["backend"], env)
        resumed = any(ckpt.list_checkpoints(rd.checkpoints) for rd in rds)
        trainer = Trainer(
            first.info.name,
            first.settings,
            first.config,
            rds[0],
            resolved,
            first.plan,
            progress,
            group=[(s.config, rd) for s, rd in zip(saved, rds, strict=True)],
            label=label,
            on_eval=on_eval,
        )
        return [run.summary for run in trainer.run_group(time.perf_counter(), resumed)]
    finally:
        for rd in locked:
            rd.unlock()


def table(
    path: Path, runs: list[dict[str, Any]], seeds: int
) -> tuple[list[dict[str, Any]], list[tuple[np.ndarray, np.ndarray]]]:
    """One row per setting from its run directory: final returns per seed, their mean, IQM and
    95% bootstrap interval of the IQM, the area under the evaluation curve, wall time; and each
    setting's evaluation curve (steps `[T]`, returns `[T, seeds]`)."""
    rows, curves = [], []
    for run in runs:
        rd = RunDir.open(path / run["run_dir"])
        summary = rd.summary() or {}
        finals = np.asarray(summary.get("final_return_per_seed", [math.nan] * seeds), np.float64)
        records = [r for r in rd.read_metrics(report=False) if "eval_return" in r]
        steps = np.asarray([r["step"] for r in records], np.float64)
        returns = np.asarray([np.atleast_1d(r["eval_return"]) for r in records], np.float64)
        curves.append((steps, returns.reshape(len(records), -1)))
        area = math.nan
        if len(records) >= 2:
            area = float(stats.curve_area(steps, returns.mean(axis=1)))
        finite = bool(np.isfinite(finals).all())
        low, high = math.nan, math.nan
        if finite and len(finals) > 1:
            low, high = stats.bootstrap_interval({"x": finals[:, None]}, stats.iqm)["x"]
        rows.append(
            {
                "label": run["label"],
                **{k: v for k, v in run["values"].items()},
                "final_per_seed": finals.tolist(),
                "mean": float(finals.mean()),
                "iqm": float(stats.iqm(finals[:, None])) if finite else math.nan,
                "iqm_low": float(low),
                "iqm_high": float(high),
                "curve_area": area,
                "wall_s": float(summary.get("wall_s", math.nan)),
                "group": run["group"],
                "diverged": summary.get("diverged"),
                "run_dir": run["run_dir"],
            }
        )
    return rows, curves


def write_results(
    path: Path,
    request: dict[str, Any],
    rows: list[dict[str, Any]],
    curves: list[Any],
    groups: int,
    wall_s: float,
) -> None:
    """sweep.json (the request, the runs and the table), sweep.csv and sweep.png."""
    saved = json.loads((path / SWEEP).read_text())
    saved.update({"table": rows, "groups": groups, "wall_s": wall_s})
    write_json(path / SWEEP, saved)
    columns = [k for k in rows[0] if k != "final_per_seed"] + ["final_per_seed"]
    with open(path / TABLE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {**row, "final_per_seed": " ".join(f"{x:g}" for x in row["final_per_seed"])}
            )
    sweep_plot(rows, curves, f"{request['algo']} on {request['env']}", path / PLOT)


def sweep_plot(rows: list[dict[str, Any]], curves: list[Any], title: str, path: Path) -> None:
    """Left: each setting's IQM of final returns with its 95% bootstrap interval, best first.
    Right: the evaluation curves (mean over seeds) of the five best settings."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = sorted(range(len(rows)), key=lambda i: _rank(rows[i]))
    fig = Figure(figsize=(11, max(3.5, 0.28 * len(rows) + 1.5)), dpi=110)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    y = np.arange(len(order))[::-1]
    iqm = np.asarray([rows[i]["iqm"] for i in order])
    low = np.asarray([rows[i]["iqm_low"] for i in order])
    high = np.asarray([rows[i]["iqm_high"] for i in order])
    left.errorbar(
        iqm, y, xerr=[np.nan_to_num(iqm - low), np.nan_to_num(high - iqm)], fmt="o", capsize=3
    )
    left.set_yticks(y, [rows[i]["label"] for i in order], fontsize=7)
    left.set_xlabel("final return: IQM over seeds, 95% bootstrap interval")
    left.grid(alpha=0.3)
    for rank, i in enumerate(order[:5]):
        steps, values = curves[i]
        if steps.size:
            mean, _, _ = band(values)
            right.plot(steps, mean, label=rows[i]["label"], color=f"C{rank}")
    right.set_xlabel("environment steps (per seed)")
    right.set_ylabel("evaluation return (mean of seeds)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def _rank(row: dict[str, Any]) -> float:
    return -row["iqm"] if math.isfinite(row["iqm"]) else math.inf
