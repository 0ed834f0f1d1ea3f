"""`bellman compare`: methods side by side with the statistics of Agarwal et al. (2021).

    inputs   = run directories (summary.json: one method, labelled with its algo) and sweep
               directories (sweep.json: each of its settings a method, labelled as the sweep
               labels it); --labels names them instead, one label per directory
    methods  = the finished runs by label; one label's runs on the same env pool their seeds
    tasks    = the envs every method ran on (an env with env_params or env_kwargs is a task
               of its own)
    scores   = per method, the final greedy return of each seed `[runs, tasks]`; with
               --normalize (return - random) / (reference - random), bellman.stats.SCORE_RANGES
    table    = per method: mean, median, IQM, each with a 95% stratified bootstrap interval, the
               optimality gap (normalised scores, when every env has a known range), and
               P(X > Y) for every pair of up to MAX_PAIRWISE methods
    written  = compare.json, performance_profile.png, intervals.png in --out (default ./compare)

A run that diverged (its summary says so, or a seed's return is not a number) is left out with a
warning: its other seeds alone would flatter it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bellman import stats
from bellman.errors import BellmanWarning, ConfigError, RunDirError
from bellman.experiment import compare_plots
from bellman.experiment.rundir import CONFIG, SUMMARY, jsonable, write_json
from bellman.experiment.settings import ENV_CHANGES

SWEEP = "sweep.json"
RESULT = "compare.json"
PROFILE_PLOT = "performance_profile.png"
INTERVALS_PLOT = "intervals.png"
MAX_PAIRWISE = 6
"""P(X > Y) is computed for every ordered pair of at most this many methods."""
MAX_REPS = 1_000_000
METRICS: dict[str, stats.Metric] = {"mean": stats.mean, "median": stats.median, "iqm": stats.iqm}
NAMES = {"mean": "mean", "median": "median", "iqm": "IQM", "optimality_gap": "optimality gap"}


class Estimate(NamedTuple):
    """A point estimate and its bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Finished:
    """One finished run as a comparison sees it."""

    label: str
    task: str
    env: str
    default_env: bool
    """Run with the env's default parameters (so its `SCORE_RANGES` entry applies)."""
    returns: list[float]
    path: Path
    argument: int
    """Which of the directories given it came from."""
    named: bool
    """Its label was given with --labels."""


@dataclass(frozen=True)
class Comparison:
    methods: list[str]
    tasks: list[str]
    scores: dict[str, np.ndarray]
    """label -> `[runs, tasks]`, normalised when `normalized`."""
    runs: dict[str, list[str]]
    """label -> its run directories."""
    normalized: bool
    ranges: dict[str, tuple[float, float]] | None
    """task -> (random, reference) return, when every task has one."""
    estimates: dict[str, dict[str, Estimate]]
    """label -> statistic (mean, median, iqm, optimality_gap) -> estimate."""
    improvement: dict[tuple[str, str], Estimate]
    """(x, y) -> P(X > Y)."""
    profiles: dict[str, stats.Profile]
    reps: int
    confidence: float
    seed: int


# ----- reading runs and sweeps -----


def load(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[Finished]:
    """The finished runs of run and sweep directories, labelled (see the module docstring)."""
    if not paths:
        raise ConfigError("name at least one run or sweep directory to compare")
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(
            f"--labels gives {len(labels)} label(s) for {len(paths)} director(ies); give one "
            "label per directory"
        )
    finished: list[Finished] = []
    for i, arg in enumerate(paths):
        path = Path(arg)
        name = None if labels is None else labels[i]
        if not path.is_dir():
            raise RunDirError(f"{path} is not a directory")
        if (path / SWEEP).is_file():
            for run_label, run_path in _sweep_runs(path):
                label = run_label if name is None else f"{name}: {run_label}"
                finished += _finished(run_path, label, i, name is not None, sweep=path)
        elif (path / SUMMARY).is_file() or (path / CONFIG).is_file():
            finished += _finished(path, name, i, name is not None)
        else:
            raise RunDirError(
                f"{path} is neither a bellman run (it has no {SUMMARY}) nor a sweep (no {SWEEP})"
            )
    if not finished:
        raise RunDirError("no run is left to compare (every one diverged)")
    return finished


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise RunDirError(f"{path} is unreadable or not valid JSON") from None


def _sweep_runs(path: Path) -> list[tuple[str, Path]]:
    """(label, run directory) of each run sweep.json lists."""
    record = _read_json(path / SWEEP)
    runs = record.get("runs") if isinstance(record, dict) else None
    if not isinstance(runs, list) or not runs:
        raise RunDirError(f"{path / SWEEP} lists no runs (no 'runs' list)")
    out = []
    for run in runs:
        if not isinstance(run, dict) or not isinstance(run.get("run_dir"), str):
            raise RunDirError(f"{path / SWEEP} has a run without a 'run_dir'")
        label = run.get("label")
        out.append((label if isinstance(label, str) else run["run_dir"], path / run["run_dir"]))
    return out


def _finished(
    path: Path, label: str | None, argument: int, named: bool, sweep: Path | None = None
) -> list[Finished]:
    """The run at `path` (of the sweep `sweep`, if any) as a one-element list, or none when it
    diverged."""
    if not path.is_dir():
        raise RunDirError(f"{path}, a run of the sweep {sweep}, is not a directory")
    if not (path / SUMMARY).is_file():
        how = (
            f"run the sweep's command again to finish {sweep}"
            if sweep
            else f"let it finish, or continue it with bellman train ALGO --resume {path}"
        )
        raise RunDirError(f"{path} has not finished (it has no {SUMMARY}); {how}")
    summary = _read_json(path / SUMMARY)
    returns = summary.get("final_return_per_seed") if isinstance(summary, dict) else None
    if (
        not isinstance(returns, list)
        or not returns
        or not all(_number_or_null(r) for r in returns)
        or not all(isinstance(summary.get(k), str) for k in ("algo", "env"))
    ):
        raise RunDirError(
            f"{path / SUMMARY} is not a bellman summary (it needs algo, env and "
            "final_return_per_seed)"
        )
    if summary.get("diverged") or not all(r is not None and math.isfinite(r) for r in returns):
        pruned = summary.get("pruned_at_step")
        why = (
            summary.get("diverged")
            or (f"a search pruned it at step {pruned:,}" if isinstance(pruned, int) else None)
            or "a seed's final return is not a number"
        )
        warnings.warn(f"left out {path}: {why}", BellmanWarning, stacklevel=3)
        return []
    env, options = summary["env"], _env_options(path)
    task = f"{env} {json.dumps(options, sort_keys=True)}" if options else env
    return [
        Finished(
            label=label or summary["algo"],
            task=task,
            env=env,
            default_env=not options,
            returns=[float(r) for r in returns],
            path=path,
            argument=argument,
            named=named,
        )
    ]


def _number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _env_options(path: Path) -> dict[str, Any]:
    """The settings that change the env (env_params, env_kwargs, randomize, the noise and
    the delay) the run's config.json records, those that are set."""
    try:
        config = json.loads((path / CONFIG).read_text())
        settings = config["settings"]
        return {k: settings[k] for k in ENV_CHANGES if settings.get(k)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # no readable config.json: the summary alone says what ran


# ----- scores -----


def score_matrices(
    finished: Sequence[Finished],
) -> tuple[list[str], list[str], dict[str, np.ndarray], dict[str, list[str]]]:
    """Methods, common tasks, label -> final returns `[runs, tasks]`, label -> run dirs."""
    pooled: dict[str, dict[str, list[Finished]]] = {}
    for run in finished:
        pooled.setdefault(run.label, {}).setdefault(run.task, []).append(run)
    for label, by_task in pooled.items():
        for task, group in by_task.items():
            others = [r for r in group if r.argument != group[0].argument]
            if others and not all(r.named for r in group):
                raise ConfigError(
                    f"{group[0].path} and {others[0].path} are both '{label}' on {task}; tell "
                    "them apart with --labels (the same label for both pools their seeds)"
                )
    methods = list(pooled)
    all_tasks = list(dict.fromkeys(run.task for run in finished))
    tasks = [t for t in all_tasks if all(t in pooled[m] for m in methods)]
    if not tasks:
        ran = "; ".join(f"{m} on {', '.join(pooled[m])}" for m in methods)
        raise RunDirError(f"the methods share no env ({ran}); compare runs on the same env(s)")
    for task in all_tasks:
        if task not in tasks:
            missing = ", ".join(m for m in methods if task not in pooled[m])
            warnings.warn(
                f"left out {task}: not every method ran on it ({missing} did not)",
                BellmanWarning,
                stacklevel=2,
            )
    scores: dict[str, np.ndarray] = {}
    runs: dict[str, list[str]] = {}
    for m in methods:
        columns = [[x for r in pooled[m][t] for x in r.returns] for t in tasks]
        n = min(map(len, columns))
        if any(len(c) != n for c in columns):
            counts = ", ".join(f"{len(c)} on {t}" for c, t in zip(columns, tasks, strict=True))
            warnings.warn(
                f"{m} has {counts} seeds; the first {n} of each count (a score matrix needs "
                "as many runs on every env)",
                BellmanWarning,
                stacklevel=2,
            )
        scores[m] = np.array([c[:n] for c in columns]).T
        runs[m] = [str(r.path) for t in tasks for r in pooled[m][t]]
    return methods, tasks, scores, runs


def score_ranges(
    finished: Sequence[Finished], tasks: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """task -> (random, reference) return, for the tasks that are an env with a known range."""
    envs = {run.task: run for run in finished}
    return {
        t: stats.SCORE_RANGES[envs[t].env]
        for t in tasks
        if envs[t].default_env and envs[t].env in stats.SCORE_RANGES
    }


def _normalized(
    scores: np.ndarray, tasks: Sequence[str], ranges: dict[str, tuple[float, float]]
) -> np.ndarray:
    return np.stack(
        [stats.normalize(scores[:, j], *ranges[t]) for j, t in enumerate(tasks)], axis=1
    )


def thresholds(scores: dict[str, np.ndarray], points: int = 101) -> np.ndarray:
    """The performance profile's taus: from just below the lowest score to the highest."""
    values = np.concatenate([s.ravel() for s in scores.values()])
    low, high = float(values.min()), float(values.max())
    pad = 0.02 * (high - low) or 0.5
    return np.linspace(low - pad, high, points)


def compare(
    paths: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    normalize: bool = False,
    reps: int = stats.REPS,
    confidence: float = stats.CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """Compare the methods of run and sweep directories on the envs they share."""
    if not 1 <= reps <= MAX_REPS:
        raise ConfigError(f"--reps takes 1 to {MAX_REPS:,} resamples, not {reps}")
    finished = load(paths, labels)
    methods, tasks, raw, runs = score_matrices(finished)
    known = score_ranges(finished, tasks)
    ranges = known if len(known) == len(tasks) else None
    if normalize and ranges is None:
        unknown = ", ".join(t for t in tasks if t not in known)
        raise ConfigError(
            f"--normalize needs the random and reference returns of every env, and bellman "
            f"knows none for {unknown} (it knows {', '.join(stats.SCORE_RANGES)}, with their "
            "default parameters)"
        )
    if not normalize and len(tasks) > 1:
        warnings.warn(
            "mean, median and IQM over several envs add up returns of different scales; "
            "--normalize puts them on one (random policy 0, reference 1)",
            BellmanWarning,
            stacklevel=2,
        )
    unit = {m: _normalized(raw[m], tasks, ranges) for m in methods} if ranges else None
    scores = unit if normalize and unit else raw

    estimates: dict[str, dict[str, Estimate]] = {m: {} for m in methods}
    metrics: list[tuple[str, stats.Metric, dict[str, np.ndarray]]] = [
        (name, metric, scores) for name, metric in METRICS.items()
    ]
    if unit is not None:
        metrics.append(("optimality_gap", stats.optimality_gap, unit))
    for name, metric, data in metrics:
        intervals = stats.bootstrap_interval(data, metric, reps, confidence, seed)
        for m in methods:
            estimates[m][name] = Estimate(metric(data[m]), *intervals[m])

    improvement = {}
    if len(methods) <= MAX_PAIRWISE:
        for i, x in enumerate(methods):
            for y in methods[i + 1 :]:
                p = stats.probability_of_improvement(scores[x], scores[y])
                low, high = stats.improvement_interval(scores[x], scores[y], reps, confidence, seed)
                improvement[x, y] = Estimate(p, low, high)
                improvement[y, x] = Estimate(1 - p, 1 - high, 1 - low)

    taus = thresholds(scores)
    profiles = {
        m: stats.performance_profile(scores[m], taus, reps, confidence, seed) for m in methods
    }
    return Comparison(
        methods=methods,
        tasks=tasks,
        scores=scores,
        runs=runs,
        normalized=normalize,
        ranges=ranges,
        estimates=estimates,
        improvement=improvement,
        profiles=profiles,
        reps=reps,
        confidence=confidence,
        seed=seed,
    )


# ----- what it shows -----


def describe(c: Comparison) -> str:
    """Two lines on what was compared, and how."""
    what = "normalised final return" if c.normalized else "final greedy return"
    envs = ", ".join(c.tasks)
    return (
        f"{len(c.methods)} method(s) on {envs}: {what} per seed\n{c.confidence:.0%} intervals "
        f"from a stratified bootstrap over seeds ({c.reps:,} resamples)"
    )


def report(c: Comparison) -> str:
    """The text `bellman compare` prints: the table of estimates and the P(X > Y) matrix."""
    digits = 3 if c.normalized else 2
    num = lambda v: f"{v:.{digits}f}"
    with_ci = lambda e: f"{num(e.value)} [{num(e.low)}, {num(e.high)}]"
    gap = c.ranges is not None
    ci = f"[{c.confidence:.0%} CI]"
    header = ["method", "runs", "mean", "median", f"IQM {ci}"]
    header += [f"optimality gap {ci}"] if gap else []
    rows = []
    for m in c.methods:
        e = c.estimates[m]
        row = [m, str(c.scores[m].shape[0]), num(e["mean"].value), num(e["median"].value)]
        row += [with_ci(e["iqm"])]
        if gap:
            g = e["optimality_gap"]
            row += [f"{g.value:.3f} [{g.low:.3f}, {g.high:.3f}]"]
        rows.append(row)
    lines = [describe(c), "", *_columns([header, *rows], right_from=1)]
    if gap and not c.normalized:
        lines.append("(optimality gap: of normalised scores, 0 = every run at the reference)")
    if c.improvement:
        lines += ["", "P(row > column): a run of the row's method beats one of the column's"]
        matrix = [["", *c.methods]]
        for x in c.methods:
            cells = ["-" if x == y else _pair(c.improvement[x, y]) for y in c.methods]
            matrix.append([x, *cells])
        lines += _columns(matrix, right_from=1)
    elif len(c.methods) > MAX_PAIRWISE:
        lines += ["", f"(P(X > Y) is shown for up to {MAX_PAIRWISE} methods)"]
    return "\n".join(lines)


def _pair(e: Estimate) -> str:
    return f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"


def _columns(rows: list[list[str]], right_from: int) -> list[str]:
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if j >= right_from else cell.ljust(w)
            for j, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def to_json(c: Comparison) -> dict[str, Any]:
    """compare.json: what was compared, the scores, every estimate with its interval."""
    return jsonable(
        {
            "tasks": c.tasks,
            "normalized": c.normalized,
            "score_ranges": (
                None
                if c.ranges is None
                else {t: {"random": r, "reference": h} for t, (r, h) in c.ranges.items()}
            ),
            "bootstrap": {"method": "stratified percentile", "reps": c.reps, "seed": c.seed},
            "confidence": c.confidence,
            "methods": {
                m: {
                    "runs": c.runs[m],
                    "scores": c.scores[m],
                    **{name: e._asdict() for name, e in c.estimates[m].items()},
                }
                for m in c.methods
            },
            "probability_of_improvement": [
                {"x": x, "y": y, **e._asdict()} for (x, y), e in c.improvement.items()
            ],
            "performance_profile": {
                "taus": c.profiles[c.methods[0]].taus,
                "methods": {
                    m: {"fraction": p.fraction, "low": p.low, "high": p.high}
                    for m, p in c.profiles.items()
                },
            },
        }
    )


def write(c: Comparison, out: Path) -> list[Path]:
    """Write compare.json, performance_profile.png and intervals.png into `out`."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RESULT, to_json(c))
        score = "normalised score" if c.normalized else "final return"
        title = f"{', '.join(c.tasks)}, {c.confidence:.0%} bootstrap intervals over seeds"
        compare_plots.performance_profile(out / PROFILE_PLOT, c.profiles, score, title)
        names = {k: NAMES[k] for k in c.estimates[c.methods[0]]}
        if not c.normalized and "optimality_gap" in names:
            names["optimality_gap"] += " (normalised)"
        compare_plots.intervals(out / INTERVALS_PLOT, c.estimates, names, score, title)
    except OSError as exc:
        raise RunDirError(f"cannot write the comparison into {out}: {exc.strerror}") from None
    return [out / RESULT, out / PROFILE_PLOT, out / INTERVALS_PLOT]
