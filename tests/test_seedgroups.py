"""A run's seeds trained as groups apart (`--seed-groups`) and merged into one run directory:
the same run, seed for seed, as training all the seeds in one program."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bellman
from bellman.errors import ConfigError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.rundir import RunDir
from bellman.experiment.seedgroups import train_split

SMALL = dict(
    steps=4_096, evals=2, eval_episodes=2, progress=False, num_envs=4, num_steps=32,
    num_minibatches=2,
)  # fmt: skip


def test_split_run_is_the_whole_run(tmp_path: Path) -> None:
    summary = train_split("ppo", "CartPole-v1", seeds=4, groups=2, out=tmp_path / "split", **SMALL)
    whole = bellman.train("ppo", "CartPole-v1", seeds=4, out=tmp_path / "whole", **SMALL)
    assert summary["seeds"] == 4 and len(summary["final_return_per_seed"]) == 4
    assert summary["final_return_per_seed"] == whole.summary["final_return_per_seed"]
    split = tmp_path / "split"
    assert json.loads((split / "config.json").read_text())["settings"]["seeds"] == 4
    records = RunDir.open(split).read_metrics()
    reference = RunDir.open(whole.run_dir).read_metrics()
    assert [(r["step"], r["update"]) for r in records] == [
        (r["step"], r["update"]) for r in reference
    ]
    for mine, theirs in zip(records, reference, strict=True):
        for name in ("episode_return", "policy_loss", "value_loss", "eval_return"):
            if name in theirs:
                np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-4, atol=1e-6)
    # the merged checkpoint is the whole run's state, seed for seed
    merged = ckpt.read_arrays(ckpt.list_checkpoints(split / "checkpoints")[-1][1])["algo"]
    alone = ckpt.read_arrays(ckpt.list_checkpoints(whole.run_dir / "checkpoints")[-1][1])["algo"]
    for a, b in zip(merged, alone, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # an ordinary run directory: load, evaluate, continue
    assert bellman.load(split, seed=3)(np.zeros(4, np.float32)) in (0, 1)
    continued = bellman.resume(split, steps=8_192, progress=False)
    assert len(continued.summary["final_return_per_seed"]) == 4


def test_first_seed_trains_a_share_of_the_seeds(tmp_path: Path) -> None:
    share = bellman.train("ppo", "CartPole-v1", seeds=2, first_seed=2, out=tmp_path / "s", **SMALL)
    whole = bellman.train("ppo", "CartPole-v1", seeds=4, out=tmp_path / "w", **SMALL)
    assert share.summary["final_return_per_seed"] == whole.summary["final_return_per_seed"][2:]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": 4, "groups": 3}, r"seed_groups \(3\) must divide seeds \(4\)"),
        ({"seeds": 2, "groups": 4}, "seed_groups must be"),
        ({"seeds": 4, "groups": 2, "first_seed": 4}, "sets each part's first_seed itself"),
        ({"seeds": 4, "groups": 2, "backend": "gymnasium"}, "needs the compiled backend"),
    ],
)
def test_bad_splits_are_one_sentence(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train_split("ppo", "CartPole-v1", out=tmp_path / "s", progress=False, **kwargs)
    assert not (tmp_path / "s").exists()


def test_first_seed_needs_the_compiled_backend(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="first_seed applies to the compiled backend"):
        bellman.train("ppo", "CartPole-v1", backend="gymnasium", first_seed=1, out=tmp_path / "r")
