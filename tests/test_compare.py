"""`bellman compare` on small fake run and sweep directories (summary.json written directly, no
training): methods, tasks, the statistics, the files, and one sentence for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bellman import cli, stats
from bellman.errors import BellmanWarning, ConfigError, RunDirError
from bellman.experiment import compare
from tests.conftest import run_cli

PPO = [500.0, 480.0, 500.0, 410.0, 500.0, 495.0]
DQN = [300.0, 150.0, 420.0, 260.0, 500.0, 90.0]
ACROBOT_PPO = [-80.0, -90.0, -85.0, -120.0, -79.0, -88.0]
ACROBOT_DQN = [-100.0, -140.0, -95.0, -500.0, -110.0, -90.0]


def run_dir(path: Path, algo: str, env: str, returns: list, **summary: object) -> Path:
    """A finished run as `bellman train` leaves it, as far as compare reads it."""
    path.mkdir(parents=True)
    record = {
        "algo": algo,
        "env": env,
        "final_return_per_seed": returns,
        "final_return_mean": 0.0,  # compare reads the per-seed returns only
        **summary,
    }
    (path / "summary.json").write_text(json.dumps(record))
    return path


def sweep_dir(path: Path, runs: list[tuple[str, str, str, list]]) -> Path:
    """A sweep: sweep.json listing (label, algo, env, returns) runs under runs/."""
    entries = []
    for i, (label, algo, env, returns) in enumerate(runs):
        run_dir(path / "runs" / f"{i:03d}", algo, env, returns)
        entries.append({"label": label, "values": {}, "run_dir": f"runs/{i:03d}", "group": 0})
    (path / "sweep.json").write_text(json.dumps({"request": {}, "runs": entries}))
    return path


@pytest.fixture
def two_algos(tmp_path: Path) -> list[Path]:
    return [
        run_dir(tmp_path / "ppo", "ppo", "CartPole-v1", PPO),
        run_dir(tmp_path / "dqn", "dqn", "CartPole-v1", DQN),
    ]


def test_two_runs_on_one_env(two_algos: list[Path]) -> None:
    c = compare.compare(two_algos, reps=500)
    assert c.methods == ["ppo", "dqn"] and c.tasks == ["CartPole-v1"]
    np.testing.assert_array_equal(c.scores["ppo"], np.array([PPO]).T)
    for m, returns in (("ppo", PPO), ("dqn", DQN)):
        matrix = np.array([returns]).T
        e = c.estimates[m]
        assert e["iqm"].value == stats.iqm(matrix) and e["mean"].value == stats.mean(matrix)
        assert (e["iqm"].low, e["iqm"].high) == stats.bootstrap_interval(
            {m: matrix}, stats.iqm, reps=500
        )[m]
        unit = stats.normalize(matrix, *stats.SCORE_RANGES["CartPole-v1"])
        assert e["optimality_gap"].value == pytest.approx(stats.optimality_gap(unit))
    p = c.improvement["ppo", "dqn"]
    assert p.value == stats.probability_of_improvement(np.array([PPO]).T, np.array([DQN]).T)
    q = c.improvement["dqn", "ppo"]
    assert q.value == pytest.approx(1 - p.value) and q.low == pytest.approx(1 - p.high)
    assert c.profiles["ppo"].fraction[0] == 1.0 and c.profiles["ppo"].fraction[-1] == 0.0


def test_report_and_files(two_algos: list[Path], tmp_path: Path) -> None:
    c = compare.compare(two_algos, reps=200)
    text = compare.report(c)
    assert "IQM [95% CI]" in text and "optimality gap" in text and "P(row > column)" in text
    ppo_row = next(line for line in text.splitlines() if line.startswith("ppo "))
    assert f"{stats.iqm(np.array([PPO]).T):.2f}" in ppo_row
    written = compare.write(c, tmp_path / "out")
    assert [p.name for p in written] == [
        "compare.json",
        "performance_profile.png",
        "intervals.png",
    ]
    for png in written[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(written[0].read_text())
    assert data["tasks"] == ["CartPole-v1"] and data["bootstrap"]["reps"] == 200
    assert data["methods"]["ppo"]["scores"] == [[r] for r in PPO]
    assert data["methods"]["dqn"]["iqm"]["value"] == pytest.approx(stats.iqm(np.array([DQN]).T))
    pairs = {(p["x"], p["y"]) for p in data["probability_of_improvement"]}
    assert pairs == {("ppo", "dqn"), ("dqn", "ppo")}
    assert len(data["performance_profile"]["taus"]) == 101


def test_labels_name_methods_and_pool_seeds(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", "ppo", "CartPole-v1", PPO[:3])
    b = run_dir(tmp_path / "b", "ppo", "CartPole-v1", PPO[3:])
    with pytest.raises(ConfigError, match="tell them apart with --labels"):
        compare.compare([a, b], reps=10)
    c = compare.compare([a, b], labels=["small", "large"], reps=10)
    assert c.methods == ["small", "large"]
    pooled = compare.compare([a, b], labels=["ppo", "ppo"], reps=10)
    assert pooled.methods == ["ppo"] and pooled.scores["ppo"].ravel().tolist() == PPO
    with pytest.raises(ConfigError, match="one label per directory"):
        compare.compare([a, b], labels=["only-one"], reps=10)


def test_envs_are_tasks_and_normalize(tmp_path: Path) -> None:
    runs = [
        run_dir(tmp_path / "ppo-cp", "ppo", "CartPole-v1", PPO),
        run_dir(tmp_path / "ppo-ac", "ppo", "Acrobot-v1", ACROBOT_PPO),
        run_dir(tmp_path / "dqn-cp", "dqn", "CartPole-v1", DQN),
        run_dir(tmp_path / "dqn-ac", "dqn", "Acrobot-v1", ACROBOT_DQN),
    ]
    c = compare.compare(runs, normalize=True, reps=200)
    assert c.methods == ["ppo", "dqn"] and c.tasks == ["CartPole-v1", "Acrobot-v1"]
    expected = np.stack(
        [
            stats.normalize(PPO, *stats.SCORE_RANGES["CartPole-v1"]),
            stats.normalize(ACROBOT_PPO, *stats.SCORE_RANGES["Acrobot-v1"]),
        ],
        axis=1,
    )
    np.testing.assert_allclose(c.scores["ppo"], expected)
    assert c.estimates["ppo"]["iqm"].value == pytest.approx(stats.iqm(expected))
    assert "normalised" in compare.report(c)
    with pytest.warns(BellmanWarning, match="different scales"):
        compare.compare(runs, reps=10)


def test_only_common_envs_count(tmp_path: Path) -> None:
    runs = [
        run_dir(tmp_path / "ppo-cp", "ppo", "CartPole-v1", PPO),
        run_dir(tmp_path / "ppo-ac", "ppo", "Acrobot-v1", ACROBOT_PPO),
        run_dir(tmp_path / "dqn-cp", "dqn", "CartPole-v1", DQN),
    ]
    with pytest.warns(BellmanWarning, match="left out Acrobot-v1: not every method ran on it"):
        c = compare.compare(runs, reps=10)
    assert c.tasks == ["CartPole-v1"]


def test_methods_with_no_common_env(tmp_path: Path) -> None:
    runs = [
        run_dir(tmp_path / "ppo", "ppo", "CartPole-v1", PPO),
        run_dir(tmp_path / "dqn", "dqn", "Acrobot-v1", ACROBOT_DQN),
    ]
    with pytest.raises(RunDirError, match="share no env"):
        compare.compare(runs, reps=10)


def test_unknown_range_has_no_gap_and_cannot_normalize(tmp_path: Path) -> None:
    runs = [
        run_dir(tmp_path / "ppo", "ppo", "Pendulum-v1", [-150.0, -160.0, -300.0]),
        run_dir(tmp_path / "sac", "sac", "Pendulum-v1", [-140.0, -145.0, -150.0]),
    ]
    c = compare.compare(runs, reps=10)
    assert c.ranges is None and "optimality_gap" not in c.estimates["ppo"]
    assert "optimality gap" not in compare.report(c)
    with pytest.raises(ConfigError, match="knows none for Pendulum-v1"):
        compare.compare(runs, normalize=True, reps=10)


def test_env_params_make_another_task(tmp_path: Path) -> None:
    long = run_dir(tmp_path / "long", "ppo", "CartPole-v1", PPO)
    (long / "config.json").write_text(
        json.dumps({"settings": {"env_params": '{"max_steps_in_episode": 1000}'}})
    )
    other = run_dir(tmp_path / "dqn", "dqn", "CartPole-v1", DQN)
    with pytest.raises(RunDirError, match="share no env"):
        compare.compare([long, other], reps=10)
    c = compare.compare([long], reps=10)
    assert c.tasks[0].startswith("CartPole-v1 {") and c.ranges is None


def test_sweep_settings_are_methods(tmp_path: Path) -> None:
    sweep = sweep_dir(
        tmp_path / "sweep",
        [
            ("lr=0.001", "ppo", "CartPole-v1", PPO),
            ("lr=0.01", "ppo", "CartPole-v1", DQN),
        ],
    )
    baseline = run_dir(tmp_path / "dqn", "dqn", "CartPole-v1", DQN)
    c = compare.compare([sweep, baseline], reps=10)
    assert c.methods == ["lr=0.001", "lr=0.01", "dqn"]
    assert c.runs["lr=0.001"] == [str(sweep / "runs" / "000")]
    named = compare.compare([sweep, baseline], labels=["ppo", "DQN"], reps=10)
    assert named.methods == ["ppo: lr=0.001", "ppo: lr=0.01", "DQN"]


def test_diverged_runs_are_left_out(tmp_path: Path) -> None:
    sweep = sweep_dir(
        tmp_path / "sweep",
        [
            ("lr=0.001", "ppo", "CartPole-v1", PPO),
            ("lr=1", "ppo", "CartPole-v1", [500.0, None, 20.0]),
        ],
    )
    with pytest.warns(BellmanWarning, match=r"left out .*not a number"):
        c = compare.compare([sweep], reps=10)
    assert c.methods == ["lr=0.001"]


def test_pruned_trials_are_left_out_as_pruned(tmp_path: Path) -> None:
    runs = [run_dir(tmp_path / "a", "ppo", "CartPole-v1", PPO)]
    runs.append(run_dir(tmp_path / "b", "ppo", "CartPole-v1", [None] * 3, pruned_at_step=20_480))
    with pytest.warns(BellmanWarning, match="a search pruned it at step 20,480"):
        c = compare.compare(runs, labels=["kept", "pruned"], reps=10)
    assert c.methods == ["kept"]


def test_unequal_seeds_over_envs_use_the_first(tmp_path: Path) -> None:
    runs = [
        run_dir(tmp_path / "ppo-cp", "ppo", "CartPole-v1", PPO),
        run_dir(tmp_path / "ppo-ac", "ppo", "Acrobot-v1", ACROBOT_PPO[:4]),
    ]
    with pytest.warns(BellmanWarning, match="the first 4 of each"):
        c = compare.compare(runs, normalize=True, reps=10)
    assert c.scores["ppo"].shape == (4, 2)


def test_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="is not a directory"):
        compare.compare([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match=r"neither a bellman run .* nor a sweep"):
        compare.compare([tmp_path / "empty"])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    with pytest.raises(RunDirError, match="has not finished"):
        compare.compare([unfinished])
    damaged = run_dir(tmp_path / "damaged", "ppo", "CartPole-v1", ["many"])
    with pytest.raises(RunDirError, match="not a bellman summary"):
        compare.compare([damaged])
    (tmp_path / "bad-sweep").mkdir()
    (tmp_path / "bad-sweep" / "sweep.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not valid JSON"):
        compare.compare([tmp_path / "bad-sweep"])
    with pytest.raises(ConfigError, match="--reps"):
        compare.compare([damaged], reps=0)
    sweep = sweep_dir(tmp_path / "sweep", [("lr=0.1", "ppo", "CartPole-v1", PPO)])
    (sweep / "runs" / "000" / "summary.json").unlink()
    with pytest.raises(RunDirError, match=r"has not finished .* run the sweep's command again"):
        compare.compare([sweep])
    (sweep / "runs" / "000").rmdir()
    with pytest.raises(RunDirError, match=r"a run of the sweep .* is not a directory"):
        compare.compare([sweep])


def test_cli_compare(two_algos: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    args = ["compare", *map(str, two_algos), "--out", str(out), "--reps", "100"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "IQM [95% CI]" in printed and f"wrote {out / 'compare.json'}" in printed
    assert cli.main([*args, "--json", "--labels", "A", "B"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["methods"]) == ["A", "B"] and len(data["files"]) == 3


@pytest.mark.parametrize(
    "case, fragment, code",
    [
        ("missing", "is not a directory", 1),
        ("empty", "neither a bellman run", 1),
        ("unfinished", "has not finished", 1),
        ("no-common-env", "share no env", 1),
        ("labels", "one label per directory", 2),
        ("reps", "--reps takes 1 to", 2),
    ],
)
def test_cli_refuses(case: str, fragment: str, code: int, tmp_path: Path, capsys) -> None:
    ppo = run_dir(tmp_path / "ppo", "ppo", "CartPole-v1", PPO)
    (tmp_path / "empty").mkdir()
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    dqn = run_dir(tmp_path / "dqn", "dqn", "Acrobot-v1", ACROBOT_DQN)
    argv = {
        "missing": [str(tmp_path / "missing")],
        "empty": [str(tmp_path / "empty")],
        "unfinished": [str(ppo), str(tmp_path / "unfinished")],
        "no-common-env": [str(ppo), str(dqn)],
        "labels": [str(ppo), "--labels", "a", "b"],
        "reps": [str(ppo), "--reps", "0"],
    }[case]
    capsys.readouterr()
    assert cli.main(["compare", *argv, "--out", str(tmp_path / "out")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bellman: error: ") and fragment in err[0]
    assert not (tmp_path / "out").exists()


def test_real_cli_exit_code(tmp_path: Path) -> None:
    result = run_cli("compare", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"bellman: error: {tmp_path} is neither a bellman run (it has no summary.json) nor a "
        "sweep (no sweep.json)"
    )
