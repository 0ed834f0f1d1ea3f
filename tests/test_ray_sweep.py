"""`bellman sweep --ray`: a sweep's groups as Ray Tune trials on a two-node Ray cluster on this
machine. The node training a group is killed mid-run; Tune starts that trial again where there
is room, `train_group` resumes the group from its checkpoints, and the sweep's table is the one
a single process makes, every chunk logged exactly once."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import pytest

import bellman
from bellman.errors import ConfigError, RunDirError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment import ray_sweep
from bellman.experiment.rundir import CONFIG, LOCK, SUMMARY, RunDir
from bellman.experiment.sweep import SWEEP

SWEEP_ARGS: dict[str, Any] = dict(
    grid=["learning_rate=1e-3,3e-4", "num_steps=16,32"],  # num_steps is static: two groups
    steps=131_072,  # ~100 chunks and 10 checkpoints per run, a few seconds of training
    seeds=2,
    evals=2,
    eval_episodes=2,
    progress=False,
    num_envs=4,
    num_minibatches=2,
)


def node_args() -> dict[str, Any]:
    """A node of the test cluster: as many logical CPUs as this process has XLA devices, so that
    a trial asking for them all runs on a node of its own, with the same devices as this process
    (`ray_sweep.worker_env`): the same programs, loaded from the program cache."""
    return {
        "num_cpus": len(jax.devices()),
        "object_store_memory": 100 * 2**20,
        "include_dashboard": False,
    }


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A head node and nothing else yet; the nodes' processes end with the test."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no report to Ray's servers
    head = Cluster(initialize_head=True, head_node_args=node_args())
    try:
        yield head
    finally:
        head.shutdown()


def planned_groups(local: Path, out: Path) -> list[tuple[str, list[Path]]]:
    """The groups (labels and run directories) the sweep `local` had, as they will be in `out`
    when the same sweep runs there."""
    saved = json.loads((local / SWEEP).read_text())
    count = 1 + max(run["group"] for run in saved["runs"])
    seeds = saved["request"]["settings"]["seeds"]
    groups = []
    for g in range(count):
        paths = [out / run["run_dir"] for run in saved["runs"] if run["group"] == g]
        groups.append((f"group {g + 1}/{count}: {len(paths)} setting(s) x{seeds}", paths))
    return groups


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rpartition(")")[2].split()[1])  # the parent's PID
    return False


def kill_node_mid_group(
    cluster: Any,
    node: Any,
    groups: list[tuple[str, list[Path]]],
    killed: dict[str, Any],
    done: threading.Event,
) -> None:
    """Once a process of `node` trains a group past its first checkpoints, kill the node (all
    its processes, SIGKILL); `killed` records the group and what its run directories held then.
    Tune starts the trial again where there is room: on the head, once its own group is done."""
    from ray._private import ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    while not done.is_set():
        for label, paths in groups:
            holders = []
            for path in paths:
                text = (path / LOCK).read_text().strip() if (path / LOCK).is_file() else ""
                holders.append(int(text) if text.isdigit() else 0)
            updates = [[u for u, _ in ckpt.list_checkpoints(p / "checkpoints")] for p in paths]
            mid_run = all(u and u[-1] > 0 for u in updates) and not any(
                (p / SUMMARY).exists() for p in paths
            )
            if mid_run and all(descends_from(pid, raylet) for pid in holders):
                cluster.remove_node(node, allow_graceful=False)
                killed.update(
                    group=label,
                    checkpoints=[u[-1] for u in updates],
                    summaries=[(p / SUMMARY).exists() for p in paths],
                )
                return
        time.sleep(0.02)


def check_metrics(run: Path, reference: Path) -> None:
    """Every chunk's update logged exactly once, then the final evaluation, with the same
    numbers as the single-process sweep's run (all but the clocks)."""
    plan = json.loads((run / CONFIG).read_text())["plan"]
    total, chunk = plan["total_updates"], plan["chunk_updates"]
    records = RunDir.open(run).read_metrics()
    chunks = [r["update"] for r in records if "episode_return" in r]
    assert chunks == [min(total, chunk * i) for i in range(1, math.ceil(total / chunk) + 1)]
    assert [r["update"] for r in records if "episode_return" not in r] == [total]
    clocks = ("time_s", "steps_per_s")
    ours = [{k: v for k, v in r.items() if k not in clocks} for r in records]
    theirs = [
        {k: v for k, v in r.items() if k not in clocks}
        for r in RunDir.open(reference).read_metrics()
    ]
    assert ours == theirs, f"{run.name} did not train as in a single process"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the test cluster's processes
def test_ray_sweep_survives_a_dead_node(tmp_path: Path, cluster: Any) -> None:
    local = bellman.sweep("ppo", "CartPole-v1", out=tmp_path / "local", **SWEEP_ARGS)
    assert local.groups == 2
    out = tmp_path / "cluster"
    groups = planned_groups(local.path, out)

    worker = cluster.add_node(**node_args())
    killed: dict[str, Any] = {}
    done = threading.Event()
    killer = threading.Thread(
        target=kill_node_mid_group, args=(cluster, worker, groups, killed, done), daemon=True
    )
    killer.start()
    try:
        on_ray = bellman.sweep(
            "ppo",
            "CartPole-v1",
            out=out,
            ray=cluster.address,
            ray_cpus=len(jax.devices()),
            **SWEEP_ARGS,
        )
    finally:
        done.set()
        killer.join()
    assert killed, "the worker node finished its group before it could be killed"
    assert not any(killed["summaries"]) and min(killed["checkpoints"]) > 0

    # Ray Tune's files under the sweep directory, a folder per group's trial
    (experiment,) = (out / ray_sweep.RAY_DIR).iterdir()
    for i, (label, paths) in enumerate(groups):
        trial = experiment / f"{i:03d}-{ray_sweep.trial_dirname(label)}"
        assert (trial / "result.json").is_file()
        # Tune saw the killed group's trial fail, and started it again
        assert (trial / "error.txt").is_file() == (label == killed["group"]), label
        summaries = [json.loads((p / SUMMARY).read_text()) for p in paths]
        # the killed group was started again, from its checkpoints; the other ran once
        assert all(s["resumed"] == (label == killed["group"]) for s in summaries), label
        for path in paths:
            check_metrics(path, local.path / path.relative_to(out))

    assert [(r["label"], r["final_per_seed"]) for r in on_ray.rows] == [
        (r["label"], r["final_per_seed"]) for r in local.rows
    ]


def test_bad_counts_and_no_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "runs" / "000-x"
    with pytest.raises(ConfigError, match="positive number of CPUs"):
        ray_sweep.run_groups([("g", [run])], "auto", cpus_per_trial=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install bellman\[ray\]"):
        ray_sweep.run_groups([("g", [run])], "auto")


def test_a_node_without_the_sweep_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "runs" / "000-x"  # as on a node that does not share the filesystem
    with pytest.raises(RunDirError, match=r"000-x is not on node .*shared filesystem"):
        ray_sweep.group_trial({"group": 0}, groups=[("g", [elsewhere])], env=None)
    assert ray_sweep.trial_dirname("group 2/3: 4 setting(s) x8") == "group-2-3-4-setting-s-x8"


def test_worker_env_and_lock_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_foo=1")
    monkeypatch.setenv("BELLMAN_CACHE_DIR", str(tmp_path / "cache"))
    env = ray_sweep.worker_env(2.5)
    assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_force_host_platform_device_count=2"
    assert env["BELLMAN_CACHE_DIR"] == str((tmp_path / "cache").resolve())
    assert env["RAY_CHDIR_TO_TRIAL_DIR"] == "0"

    record = {"algo": "ppo", "env": "CartPole-v1", "backend": "compiled"}
    held = RunDir.create(tmp_path / "run", {**record, "settings": {}, "config": {}, "plan": {}})
    other = threading.Timer(0.5, held.unlock)
    other.start()
    began = time.monotonic()
    ray_sweep.wait_for_locks([held.path], timeout_s=30)  # another handle: blocked until unlock
    assert time.monotonic() - began >= 0.4
    held.lock()
    try:
        with pytest.raises(RunDirError, match=f"PID {os.getpid()}"):
            ray_sweep.wait_for_locks([held.path], timeout_s=0.2)
    finally:
        held.unlock()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_seed_groups_on_two_nodes_merge_into_the_whole_run(tmp_path: Path, cluster: Any) -> None:
    """`bellman train --seeds 4 --seed-groups 2 --ray`: the two halves of the seeds train as Ray
    trials (one per node), and the merged run directory is the run one process trains."""
    from bellman.experiment.seedgroups import train_split

    small: dict[str, Any] = dict(
        steps=4_096, evals=2, eval_episodes=2, progress=False, num_envs=4, num_steps=32,
        num_minibatches=2,
    )  # fmt: skip
    cluster.add_node(**node_args())
    summary = train_split(
        "ppo",
        "CartPole-v1",
        seeds=4,
        groups=2,
        ray=cluster.address,
        ray_cpus=len(jax.devices()),
        out=tmp_path / "split",
        **small,
    )
    whole = bellman.train("ppo", "CartPole-v1", seeds=4, out=tmp_path / "whole", **small)
    assert summary["final_return_per_seed"] == whole.summary["final_return_per_seed"]
    (experiment,) = (tmp_path / "split" / ray_sweep.RAY_DIR).iterdir()
    trials = sorted(t.name for t in experiment.iterdir() if (t / "result.json").is_file())
    assert len(trials) == 2, "a Ray trial per group of seeds"
