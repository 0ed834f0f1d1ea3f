"""`bellman sweep --ray ADDRESS`: a sweep's groups as Ray Tune trials on a running Ray cluster.

    driver (the `bellman sweep` process, on any machine of the cluster):
        ray.init(address)                        connect to the cluster (`ray start` made it)
        Tuner(a trial per unfinished group)      Tune places each trial on a node that has the
            .fit()                               CPUs (and GPUs) it declares
    each trial (a Ray worker process on some node):
        train_group(its run directories)         `bellman.experiment.sweep.train_group`
        tune.report(final returns)               once, at the end
    a trial whose node died (or that raised) is started again, up to `max_failures` times:
    train_group resumes its run directories from their newest common checkpoint, as running the
    sweep's command again does.

Files. The trials write the run directories straight into the sweep directory, by absolute
path: every node must see the sweep directory at the same path, which holds on one machine and
on a filesystem every node mounts at the same place (NFS). bellman syncs nothing between
machines, and does not use Ray's storage syncing either (bellman's checkpoints are not Tune
checkpoints); a trial on a node that cannot see its run directories fails with one sentence
saying so. Ray Tune's own files (the experiment's state, each trial's result.json and
error.txt) go to RAY_DIR under the sweep directory.

The workers' environment (Ray's job-level runtime_env): BELLMAN_CACHE_DIR is the driver's
program cache (`bellman.jax_setup.cache_root`), so that workers on the driver's machine, or on
machines sharing that folder, load the programs compiled before instead of compiling them
again (with BELLMAN_CACHE_KEY_FILE as well when the driver sets it); XLA_FLAGS is the driver's
with one XLA CPU device per CPU of the trial (`--xla_force_host_platform_device_count`), so that
trials sharing a node share its cores rather than each sharding its seeds over all of them; and
RAY_CHDIR_TO_TRIAL_DIR=0 keeps a trial in its worker's working directory.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import socket
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bellman import jax_setup
from bellman.errors import BellmanError, ConfigError, RunDirError
from bellman.experiment import sweep as sweeping
from bellman.experiment.rundir import CONFIG, SUMMARY, RunDir
from bellman.experiment.train import Interrupted
from bellman.runners import programs

RAY_DIR = "ray"
"""The folder of the sweep directory Ray Tune writes its experiments into."""
LOCK_WAIT_S = 120.0
"""How long a trial waits for its run directories' locks: a trial started again after its node
died may find them held by the process it replaces until that process has ended (on an NFS
mount, until the dead machine's lease runs out)."""
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


class TrialsFailed(BellmanError):
    """Groups of a sweep that the Ray cluster did not finish (after their retries)."""


def run_groups(
    groups: Sequence[tuple[str, Sequence[Path]]],
    address: str,
    *,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_failures: int = 3,
    progress: bool = False,
    env: Any = None,
    ray_dir: Path | None = None,
) -> None:
    """Train each group of a sweep as one Ray Tune trial on the Ray cluster at `address`, and
    return when every trial has ended.

    Args:
        groups: (label, run directories) per group, the directories created by the sweep
            driver (`bellman.experiment.sweep.make_run_dir`) and each group's runs one program
            (see `train_group`).
        address: the cluster's address, `auto` for the one `ray start` started on this machine
            or HOST:PORT (`ray.init(address=...)`). When this process is connected to Ray
            already, that connection (and its runtime_env) is used instead.
        cpus_per_trial: CPUs each trial asks Ray for; its program gets one XLA CPU device per
            whole CPU.
        gpus_per_trial: GPUs each trial asks Ray for (Ray then shows the trial only its own,
            through CUDA_VISIBLE_DEVICES); with 0, a trial on a GPU node sees all of them.
        max_failures: how many times a failed trial is started again.
        progress: print Ray Tune's table of trials as they run (else Tune prints nothing).
        env: the env object of a sweep given one (sent to the workers by Ray's cloudpickle).
        ray_dir: where Ray Tune writes its experiment (default: RAY_DIR beside the folder of
            the run directories: `<sweep>/ray`).

    Raises:
        ConfigError: Ray is not installed, no cluster answers at `address`, or a bad count.
        TrialsFailed: some groups did not finish: which, where their run directories are, and
            that running the sweep's command again resumes them.
        Interrupted: Ray Tune was stopped (Ctrl-C) before every group finished.
    """
    if not groups:
        return
    if not (cpus_per_trial > 0 and gpus_per_trial >= 0):
        raise ConfigError(
            f"a Ray trial needs a positive number of CPUs and no negative number of GPUs, not "
            f"{cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs"
        )
    if max_failures < -1:
        raise ConfigError(f"max_failures is a count of retries (-1: no end), not {max_failures}")
    ray, tune = _import_ray()
    absolute = [(label, [Path(p).resolve() for p in paths]) for label, paths in groups]
    storage = Path(ray_dir) if ray_dir is not None else absolute[0][1][0].parent.parent / RAY_DIR
    storage = storage.resolve()
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(
                address=address,
                runtime_env={"env_vars": worker_env(cpus_per_trial)},
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
        except ConnectionError as exc:
            raise ConfigError(
                f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` "
                "or give its address as --ray HOST:PORT"
            ) from None
    try:
        experiment = f"groups-{datetime.now():%Y%m%d-%H%M%S}"
        dirnames = [f"{i:03d}-{trial_dirname(label)}" for i, (label, _) in enumerate(absolute)]
        trainable = tune.with_resources(
            tune.with_parameters(group_trial, groups=absolute, env=env),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"group": tune.grid_search(list(range(len(absolute))))},
            tune_config=tune.TuneConfig(
                trial_dirname_creator=lambda trial: dirnames[trial.config["group"]]
            ),
            run_config=tune.RunConfig(
                name=experiment,
                storage_path=str(storage),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                verbose=1 if progress else 0,
            ),
        )
        results = list(tuner.fit())
    finally:
        if connected_here:
            ray.shutdown()
    _check_results(absolute, dirnames, results, storage / experiment)


def worker_env(cpus_per_trial: float) -> dict[str, str]:
    """The environment variables Ray sets in every worker of the sweep (see the module's
    docstring)."""
    cache = jax_setup.cache_root()
    flags = [
        f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)
    ]
    env = {
        "BELLMAN_CACHE_DIR": "off" if cache is None else str(cache.resolve()),
        "XLA_FLAGS": " ".join(
            [*flags, f"{DEVICE_COUNT_FLAG}={max(1, math.floor(cpus_per_trial))}"]
        ),
        "RAY_CHDIR_TO_TRIAL_DIR": "0",
    }
    if os.environ.get("BELLMAN_CACHE_KEY_FILE"):
        env["BELLMAN_CACHE_KEY_FILE"] = str(programs.key_file().resolve())
    return env


def _import_ray() -> tuple[Any, Any]:
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError(
            "--ray runs the sweep on a Ray cluster, which needs Ray Tune: pip install bellman[ray]"
        ) from None
    return ray, tune


def trial_dirname(label: str) -> str:
    """A group's trial folder in Ray Tune's experiment: its label, in characters any
    filesystem takes."""
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "-", label).strip("-")[:80] or "group"


def group_trial(config: dict[str, Any], groups: list[tuple[str, list[Path]]], env: Any) -> None:
    """One group, in a Ray worker: train its run directories to the end (resuming them from
    their checkpoints, if any), then report their final returns to Tune."""
    from ray import tune

    label, paths = groups[config["group"]]
    host = socket.gethostname()
    for path in paths:
        if not (path / CONFIG).is_file():
            raise RunDirError(
                f"{path} is not on node {host}: a sweep on a Ray cluster writes its run "
                "directories by absolute path, so every node needs the sweep directory at the "
                "same path (on one machine, or on a shared filesystem such as NFS)"
            )
    jax_setup.configure()  # before this worker's first JAX computation
    wait_for_locks(paths, LOCK_WAIT_S)
    summaries = sweeping.train_group(paths, label=label, progress=False, env=env)
    tune.report(
        {
            "host": host,
            "final_return_mean": {
                Path(s["run_dir"]).name: s["final_return_mean"] for s in summaries
            },
        }
    )


def wait_for_locks(paths: Sequence[Path], timeout_s: float) -> None:
    """Return once no process holds the run directories' locks, or raise the RunDirError that
    names the holder after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    for path in paths:
        rd = RunDir.open(path)
        while True:
            try:
                rd.lock()
            except RunDirError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
            else:
                rd.unlock()
                break


def _check_results(
    groups: list[tuple[str, list[Path]]],
    dirnames: list[str],
    results: list[Any],
    experiment: Path,
) -> None:
    """Raise TrialsFailed naming the groups whose trials failed for good or whose run
    directories hold no result here, or Interrupted when Tune was stopped before the end (a
    trial never started has no config, but has its folder: results are matched by folder)."""
    by_folder = {Path(r.path).name: r for r in results if r.path}
    failed, stopped = [], []
    for (label, paths), folder in zip(groups, dirnames, strict=True):
        if all((p / SUMMARY).is_file() for p in paths):
            continue
        where = ", ".join(map(str, paths))
        result = by_folder.get(folder)
        metrics = (result.metrics or {}) if result is not None else {}
        if result is not None and result.error is not None:
            failed.append(f"{label} ({_why(result.error)}; run directories {where})")
        elif "final_return_mean" in metrics:
            failed.append(
                f"{label} (it finished on {metrics.get('host', 'another node')}, but its run "
                f"directories {where} hold no summary.json here: the sweep directory must be on "
                "a filesystem every node shares)"
            )
        else:
            stopped.append(label)
    if failed:
        raise TrialsFailed(
            f"{len(failed)} of {len(groups)} group(s) did not finish on the Ray cluster: "
            f"{'; '.join(failed)}; running the same command again resumes them from their "
            f"checkpoints (Ray Tune's logs of each trial are in {experiment})"
        )
    if stopped:
        raise Interrupted(
            f"stopped by SIGINT before {len(stopped)} group(s) finished; the sweep is saved: "
            "continue it with the same command",
            signal.SIGINT,
        )


def _why(error: BaseException) -> str:
    """One line of why a trial failed: the bellman error's sentence, that its worker died, or
    the error's kind and last line."""
    from ray.exceptions import NodeDiedError, RayActorError, WorkerCrashedError

    cause = getattr(error, "cause", None) or error
    if isinstance(cause, BellmanError):
        return str(cause)
    if isinstance(cause, RayActorError | NodeDiedError | WorkerCrashedError):
        return f"its Ray worker or node died ({type(cause).__name__})"
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1]}" if text else type(cause).__name__
