"""Sweeps: traced settings share one compiled program (vmapped over settings x seeds), every
setting of a group trains as its single run does, and `bellman sweep`'s directory, table and
resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

import bellman
from bellman import config as cfg
from bellman.algos import dqn, ppo
from bellman.envs import registry
from bellman.errors import ConfigError, RunDirError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.sweep import group_settings, parse_grid, settings_of
from bellman.runners.offpolicy import CompiledOffPolicy
from bellman.runners.onpolicy import CompiledOnPolicy


def test_traced_and_static_settings() -> None:
    traced = cfg.traced_fields(ppo.PPOConfig)
    assert {"learning_rate", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef"} <= set(
        traced
    )
    assert "num_envs" not in traced and "hidden_sizes" not in traced
    # floats where 0 switches a part of the computation off stay compiled in
    assert {"eval_epsilon", "clip_rewards", "max_grad_norm"}.isdisjoint(
        cfg.traced_fields(dqn.DQNConfig)
    )
    a, b = ppo.PPOConfig(learning_rate=1e-3), ppo.PPOConfig(learning_rate=1e-4, ent_coef=0.0)
    assert cfg.static_part(a) == cfg.static_part(b)
    assert cfg.static_part(a) != cfg.static_part(ppo.PPOConfig(num_envs=8))
    values = cfg.traced_values([a, b], seeds=2)
    np.testing.assert_array_equal(values["learning_rate"], np.float32([1e-3, 1e-3, 1e-4, 1e-4]))


def _leaves(tree: object) -> list[np.ndarray]:
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.mark.parametrize("family", ["on_policy", "off_policy"])
def test_group_matches_each_setting_alone(family: str) -> None:
    """Two settings x 2 seeds in one program: the first updates' metrics and parameters of each
    setting are those of the setting run alone (to float tolerance: vmapping may fuse
    differently)."""
    env = registry.resolve("CartPole-v1").jax_env
    if family == "on_policy":
        base = ppo.PPOConfig(num_envs=4, num_steps=16, num_minibatches=2)
        configs = [
            base,
            ppo.PPOConfig(
                num_envs=4, num_steps=16, num_minibatches=2, learning_rate=1e-3, ent_coef=0.0
            ),
        ]
        make = lambda cs: CompiledOnPolicy(ppo, cs, env, 2, 7, 3, 3)
    else:
        configs = [
            dqn.DQNConfig(num_envs=2, learning_starts=32, train_frequency=8, batch_size=16),
            dqn.DQNConfig(
                num_envs=2,
                learning_starts=32,
                train_frequency=8,
                batch_size=16,
                learning_rate=1e-2,
                gamma=0.5,
                exploration_final_eps=0.3,
            ),
        ]
        make = lambda cs: CompiledOffPolicy(dqn, cs, env, 2, 7, 4, 4)
    group = make(configs)
    state, result = group.run_chunk(group.init_state(), 0)
    assert group.members == 4
    for k, config in enumerate(configs):
        alone = make([config])
        alone_state, alone_result = alone.run_chunk(alone.init_state(), 0)
        for name, value in alone_result.metrics.items():
            mine = result.metrics[name][2 * k : 2 * k + 2]
            np.testing.assert_allclose(mine, value, rtol=2e-4, atol=1e-5)
        mine = _leaves(_members(state.algo, 2 * k, 2 * k + 2))
        for a, b in zip(mine, _leaves(alone_state.algo), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
    # the settings did differ: their parameters are not the same
    first, second = (_leaves(_members(state.algo, i, i + 1)) for i in (0, 2))
    assert any(not np.allclose(a, b) for a, b in zip(first, second, strict=True) if a.size > 1)


def _members(tree: object, start: int, stop: int) -> object:
    return jax.tree.map(lambda x: x[start:stop], tree)


def _member(tree: object, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def test_traced_settings_reuse_the_compiled_program(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Runs that differ only in a traced setting load each other's programs."""
    monkeypatch.setenv("BELLMAN_CACHE_DIR", str(tmp_path))
    env = registry.resolve("CartPole-v1").jax_env
    make = lambda lr: CompiledOnPolicy(
        ppo, [ppo.PPOConfig(num_envs=4, num_steps=16, learning_rate=lr)], env, 1, 0, 2, 2
    )
    make(1e-3).compile()
    other = make(3e-4)
    traced = []
    original = other._chunk.lower
    monkeypatch.setattr(other._chunk, "lower", lambda *a: traced.append(1) or original(*a))
    other.compile()
    assert not traced, "a run with another learning rate loads the same program"


@pytest.mark.slow
def test_every_setting_ends_where_its_single_run_ends(tmp_path: Path) -> None:
    """On the truncation probe V(s) = 1 / (1 - gamma): a sweep over gamma (traced) learns each
    setting's value, the value that setting's single run learns. (The parameters themselves
    drift apart over hundreds of Adam steps from float rounding: the probe's policy gradient is
    pure noise, which Adam scales to full steps.)"""
    env = "probe/Truncation-v0"
    spec = registry.resolve(env).spec
    common: dict = dict(
        steps=12_800,
        seeds=2,
        evals=0,
        eval_episodes=2,
        progress=False,
        num_envs=8,
        num_steps=16,
        num_minibatches=2,
        gae_lambda=0.9,
    )
    result = bellman.sweep(
        "ppo", env, grid={"gamma": [0.5, 0.8]}, out=tmp_path / "sweep", learning_rate=3e-3, **common
    )
    assert result.groups == 1
    obs = np.ones((1, *spec.obs_shape), np.float32)

    def values(config: ppo.PPOConfig, algo_state: object) -> np.ndarray:
        return np.array(
            [
                float(ppo.value(config, spec, _member(algo_state, i).params, obs)[0])
                for i in range(2)
            ]
        )

    for row, gamma in zip(result.rows, (0.5, 0.8), strict=True):
        single = bellman.train(
            "ppo", env, out=tmp_path / f"single-{gamma}", learning_rate=3e-3, gamma=gamma, **common
        )
        newest = ckpt.list_checkpoints(result.path / row["run_dir"] / "checkpoints")[-1][1]
        swept, _ = ckpt.load(newest, {"algo": single.algo_state})
        v_single, v_swept = (
            values(single.config, single.algo_state),
            values(single.config, swept["algo"]),
        )
        target = 1 / (1 - gamma)
        np.testing.assert_allclose(v_single, target, rtol=0.1)
        np.testing.assert_allclose(v_swept, v_single, rtol=0.02)
        assert row["final_per_seed"] == single.summary["final_return_per_seed"]


def test_sweep_directory_table_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    kwargs = dict(
        grid=["learning_rate=1e-3,3e-4", "num_steps=16,32"],
        steps=2_048,
        seeds=2,
        evals=2,
        eval_episodes=2,
        out=out,
        progress=False,
        num_envs=4,
        num_minibatches=2,
    )
    result = bellman.sweep("ppo", "CartPole-v1", **kwargs)
    assert result.groups == 2, "num_steps is static: one program per value"
    record = json.loads((out / "sweep.json").read_text())
    assert [r["label"] for r in record["table"]] == [
        "learning_rate=0.001,num_steps=16",
        "learning_rate=0.001,num_steps=32",
        "learning_rate=0.0003,num_steps=16",
        "learning_rate=0.0003,num_steps=32",
    ]
    for row in record["table"]:
        assert len(row["final_per_seed"]) == 2
        assert row["iqm_low"] <= row["iqm"] <= row["iqm_high"]
        run = out / row["run_dir"]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["final_return_per_seed"] == row["final_per_seed"]
        assert json.loads((run / "config.json").read_text())["config"]["num_steps"] in (16, 32)
    assert (out / "sweep.csv").read_text().count("\n") == 5
    assert (out / "sweep.png").stat().st_size > 0

    # a killed sweep: group 0 lost its summaries, and one of its runs its newest checkpoint
    finals = {row["run_dir"]: row["final_per_seed"] for row in record["table"]}
    group0 = [row["run_dir"] for row in record["table"] if row["group"] == 0]
    for run_dir in group0:
        (out / run_dir / "summary.json").unlink()
    ckpt.list_checkpoints(out / group0[0] / "checkpoints")[-1][1].unlink()
    again = bellman.sweep("ppo", "CartPole-v1", **kwargs)
    assert {r["run_dir"]: r["final_per_seed"] for r in again.rows} == finals

    with pytest.raises(RunDirError, match="holds another sweep"):
        bellman.sweep("ppo", "CartPole-v1", **{**kwargs, "seeds": 1})


def test_settings_and_bad_input() -> None:
    fields = cfg.field_types(ppo.PPOConfig)
    grid = parse_grid(["learning_rate=1e-4,3e-4", "ent-coef=0,0.01"], fields)
    assert grid == {"learning_rate": [1e-4, 3e-4], "ent_coef": [0.0, 0.01]}
    points = settings_of(grid, {}, None, 0)
    assert [p.values for p in points][1] == {"learning_rate": 1e-4, "ent_coef": 0.01}
    drawn = settings_of({}, {"learning_rate": (1e-5, 1e-2), "gae_lambda": (0.8, 1.0)}, 50, 0)
    lrs = np.array([p.values["learning_rate"] for p in drawn])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-2
    assert (lrs < 1e-4).sum() > 5, "log-uniform: a third of the draws below 1e-4"
    configs = [ppo.PPOConfig(learning_rate=x) for x in (1e-3, 1e-4)] + [ppo.PPOConfig(num_envs=8)]
    assert group_settings(configs, compiled=True) == [[0, 1], [2]]
    assert group_settings(configs, compiled=False) == [[0], [1], [2]]
    with pytest.raises(ConfigError, match=r"no setting 'learnin_rate'.*learning_rate"):
        parse_grid(["learnin_rate=1"], fields)
    with pytest.raises(ConfigError, match="must be name=v1,v2"):
        parse_grid(["learning_rate"], fields)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": ["learning_rate=-1,1e-3"]}, "setting learning_rate=-1: learning_rate must be"),
        ({}, "a sweep needs settings"),
        ({"ranges": ["learning_rate=1e-4:1e-3"]}, "--range needs --random"),
        ({"random": 3}, "give --range"),
        ({"random": 2, "ranges": ["learning_rate=1e-3:1e-4"]}, "low must be below high"),
    ],
)
def test_bad_sweeps_are_one_sentence(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        bellman.sweep("ppo", "CartPole-v1", out=tmp_path / "s", progress=False, **kwargs)
    assert not (tmp_path / "s").exists()


def test_a_group_drops_the_settings_it_stops(tmp_path: Path) -> None:
    """A setting stopped at an evaluation (a pruned trial) leaves the group: the others go on in
    a smaller program and end where they end without it."""
    from bellman.experiment.settings import Plan
    from bellman.experiment.sweep import make_run_dir, prepare, train_group

    small = {"num_envs": 4, "num_steps": 16, "num_minibatches": 2}
    info, settings, resolved, base = prepare(
        "ppo", "CartPole-v1", small, steps=640, seeds=2, evals=5, eval_episodes=2
    )
    configs = [cfg.with_overrides(base, {"learning_rate": x}) for x in (1e-3, 3e-4, 1e-4)]
    plan = Plan.make(settings, 640, 64)
    finals = {}
    for name in ("whole", "stopped"):
        paths = [tmp_path / name / str(i) for i in range(3)]
        for p, c in zip(paths, configs, strict=True):
            make_run_dir(p, info.name, settings, c, resolved, plan)
        calls: list[tuple[int, list[int]]] = []

        def stop_second(step: int, running: list[int], returns: np.ndarray) -> list[int]:
            calls.append((step, running))  # noqa: B023 (called within this iteration)
            assert returns.shape == (len(running), 2)
            return [1] if name == "stopped" and 1 in running else []  # noqa: B023

        summaries = train_group(paths, progress=False, on_eval=stop_second)
        finals[name] = [
            ckpt.read_arrays(ckpt.list_checkpoints(p / "checkpoints")[-1][1]) for p in paths
        ]
        if name == "stopped":
            assert calls[0][1] == [0, 1, 2] and calls[1][1] == [0, 2]
            assert summaries[1]["pruned_at_step"] == calls[0][0]
            assert all(np.isnan(summaries[1]["final_return_per_seed"]))
            assert ckpt.list_checkpoints(paths[1] / "checkpoints")[-1][0] < plan.total_updates
    for k in (0, 2):
        for a, b in zip(finals["whole"][k]["algo"], finals["stopped"][k]["algo"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_optuna_search_prunes_and_tells(tmp_path: Path) -> None:
    """Trials below 100 after 2,000 steps are pruned (a step size of 1e-7 to 1e-5 does not
    learn CartPole in 8,192 steps); the others are told their mean final return."""
    import optuna

    from bellman.experiment.search import search

    threshold = optuna.pruners.ThresholdPruner(lower=100.0, n_warmup_steps=2_000)
    kwargs: dict = dict(
        trials=8,
        batch=4,
        sampler="random",
        pruner=threshold,
        ranges={"learning_rate": (1e-7, 3e-3)},
        steps=8_192,
        seeds=2,
        evals=8,
        eval_episodes=2,
        out=tmp_path / "search",
        progress=False,
        num_envs=4,
        num_steps=32,
        num_minibatches=2,
    )
    result = search("ppo", "CartPole-v1", **kwargs)
    assert result.trials is not None
    assert sum(result.trials.values()) == 8 == len(result.rows)
    assert result.trials["pruned"] >= 1, result.rows
    pruned = [r for r in result.rows if r["state"] == "pruned"]
    assert all(np.isnan(r["mean"]) for r in pruned)
    for row in pruned:
        summary = json.loads((result.path / row["run_dir"] / "summary.json").read_text())
        assert 2_000 <= summary["pruned_at_step"] < 8_192
    assert result.best_value == max(r["mean"] for r in result.rows if r["state"] == "complete")
    # bellman compare reads the search's trials (the pruned ones left out, with a warning)
    from bellman.experiment import compare

    with pytest.warns(bellman.BellmanWarning, match="pruned it at step"):
        compared = compare.compare([result.path], reps=10)
    assert len(compared.methods) == result.trials["complete"]
    # the same command continues the study: nothing left to do
    again = search("ppo", "CartPole-v1", **kwargs)
    np.testing.assert_array_equal([r["mean"] for r in again.rows], [r["mean"] for r in result.rows])
