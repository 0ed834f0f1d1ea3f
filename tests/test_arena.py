"""`bellman arena` and `bellman play`: match statistics on hand numbers, the Elo fit on known
ratings, built-in players against each other, a trained run's agent, its ladder, and a person's
moves typed in (illegal ones refused)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bellman.experiment import arena
from tests.conftest import run_cli

TINY = [
    "train", "alphazero", "--env", "tic_tac_toe", "--steps", "4096", "--num-envs", "32",
    "--channels", "8", "--blocks", "1", "--num-simulations", "8", "--eval-simulations", "8",
    "--learning-starts", "64", "--batch-size", "32", "--checkpoint-every", "1024",
    "--evals", "0", "--eval-episodes", "4", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("arena") / "ttt"
    result = run_cli(*TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_match_statistics_on_hand_numbers() -> None:
    result = arena.summarize(np.array([1.0, 1.0, 0.0, -1.0]))
    assert (result["wins"], result["draws"], result["losses"]) == (2, 1, 1)
    assert result["score"] == pytest.approx(0.625)
    # points 1, 1, 0.5, 0: sd 0.4787 (ddof 1), half width 1.96 * 0.4787 / 2, clipped at 1
    lo, hi = result["score_interval"]
    assert lo == pytest.approx(0.625 - 1.959964 * 0.478714 / 2, rel=1e-4) and hi == 1.0
    assert result["elo_difference"] == pytest.approx(400 * math.log10(0.625 / 0.375))
    # no loss in 200 games: the loss rate is below 1.9% with 95% confidence (Wilson)
    lo, hi = arena.wilson(0, 200)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(1.959964**2 / (200 + 1.959964**2), rel=1e-6)
    assert arena.elo_difference(1.0) == math.inf and arena.elo_difference(0.0) == -math.inf


def test_the_elo_fit_recovers_known_ratings() -> None:
    """Results drawn from the Elo model's expected scores of players at 0, 200 and 500 (many
    games, so that the fit's small prior does not matter) give those ratings back."""
    true = np.array([0.0, 200.0, 500.0])
    results = []
    for i in range(3):
        for j in range(3):
            if i < j:
                p = 1 / (1 + 10 ** ((true[j] - true[i]) / 400))
                results.append((i, j, p * 100_000, 100_000))
    ratings = arena.fit_elo(3, results)
    assert ratings[0] == 0.0
    np.testing.assert_allclose(ratings, true, atol=2.0)


def test_built_in_players_against_each_other() -> None:
    result = run_cli(
        "arena", "random", "minimax", "--env", "tic_tac_toe", "--games", "60", "--json"
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["games"] == 60 and out["env"] == "tic_tac_toe"
    assert out["wins"] == 0 and out["losses"] > 30  # minimax never loses, random often does
    assert out["as_first"]["wins"] + out["as_first"]["draws"] + out["as_first"]["losses"] == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["random", "minimax", "--env", "connect_four"], "minimax plays tic_tac_toe only"),
        (["random", "mcts"], "two built-in players need the game to play: --env"),
        (["random", "nobody", "--env", "tic_tac_toe"], "neither a run directory nor a built-in"),
        (["random", "mcts:0", "--env", "tic_tac_toe"], "mcts takes 1 to 100,000 simulations"),
        (["random", "random", "--env", "CartPole-v1"], "not a two-player game"),
        (["random", "random", "--env", "tic_tac_toe", "--games", "0"], "games must be"),
        (["random"], "give two players"),
    ],
)
def test_bad_arena_requests_get_one_sentence(args: list[str], message: str) -> None:
    result = run_cli("arena", *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr


def test_a_run_plays_the_arena_and_has_a_ladder(run_dir: Path) -> None:
    result = run_cli("arena", str(run_dir), "random", "--games", "20", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["a"] == str(run_dir) and out["b"] == "random" and out["games"] == 20
    assert out["wins"] + out["draws"] + out["losses"] == 20
    snapshots = sorted((run_dir / "snapshots").glob("*.ckpt"))
    assert len(snapshots) >= 4  # update 0 and every checkpoint
    result = run_cli("arena", str(run_dir), "--ladder", "--games", "10", "--json")
    assert result.returncode == 0, result.stderr
    ladder = json.loads(result.stdout)
    assert ladder["players"][0]["player"] == "random"
    assert len(ladder["players"]) == len(snapshots) + 1
    assert ladder["players"][0]["elo"] == 0.0
    assert all(np.isfinite(p["elo"]) for p in ladder["players"])
    result = run_cli("arena", str(run_dir), "random", "--snapshots", "--games", "6", "--json")
    assert result.returncode == 0, result.stderr
    curve = json.loads(result.stdout)
    assert curve["opponent"] == "random" and len(curve["points"]) == len(snapshots)
    steps = [p["step"] for p in curve["points"]]
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == 4096
    assert all(p["wins"] + p["draws"] + p["losses"] == 6 for p in curve["points"])


def test_a_person_plays_with_illegal_moves_refused(run_dir: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    moves = "\n".join(["0", "x", "1", "1", *map(str, range(2, 10))]) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "bellman", "play", str(run_dir)],
        input=moves,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "'0' is not a cell: type a number from 1 to 9" in out
    assert "'x' is not a cell" in out
    assert "cell 1 is taken: choose an empty one" in out
    assert " X | " in out and "the agent plays" in out
    assert out.rstrip().splitlines()[-1] in ("you win", "a draw", "the agent wins")
    # input ends before the game does: one sentence, no traceback
    result = subprocess.run(
        [sys.executable, "-m", "bellman", "play", str(run_dir), "--second"],
        input="",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "the game was abandoned" in result.stderr


def test_eval_of_a_game_run_plays_the_opponent_and_renders_an_animation(run_dir: Path) -> None:
    result = run_cli("eval", str(run_dir), "--episodes", "6", "--video", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["algo"] == "alphazero" and out["episodes"] == 6
    score = out["return_per_seed"][0] * 6  # the sum of 6 outcomes, each +1, 0 or -1
    assert abs(score - round(score)) < 1e-9 and -6 <= score <= 6
    video = Path(out["video"])
    assert video.suffix == ".svg" and video.parent == run_dir / "videos"
    text = video.read_text()
    frames = text.count('class="frame"')
    assert 6 <= frames <= 10, frames  # a tic-tac-toe game: 5 to 9 moves, and the empty board
