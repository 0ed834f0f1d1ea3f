"""`bellman solve`: the maze as the robotics lecture shows it, JSON and plots, and one clear
sentence for every input it cannot solve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bellman.experiment import solve
from tests.conftest import run_cli
from tests.test_cli import assert_one_sentence_error


def test_maze_json_from_the_command_line(tmp_path: Path) -> None:
    result = run_cli("solve", "Maze-v0", "--json", "--plot", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["objective"] == "cost" and data["gamma"] == 0.9  # the maze's own convention
    assert data["grid_shape"] == [3, 4]
    values, v0 = data["values"], data["history"][0]
    assert values[1][1] is None and v0[1][1] is None  # the blocked cell
    assert v0[0][3] == -1.0 and v0[1][3] == 1.0 and v0[2][0] == 0.0  # V_0 = the cells' costs
    assert len(data["history"]) == data["iterations"] + 1
    assert values[0][3] == pytest.approx(-10.0, abs=1e-3)  # green: -1 / (1 - 0.9)
    # V_1(s) = min_a [C(s) + 0.9 V_0(s')]: next to green it is 0 + 0.9 * -1
    assert data["history"][1][0][2] == pytest.approx(-0.9)
    assert data["policy"][0][:3] == [1, 1, 1]  # right, right, right into the green cell
    assert data["policy_arrows"][0][:3] == ["→", "→", "→"]
    assert data["actions"] == ["up", "right", "down", "left"]
    for name in data["plots"]:
        assert Path(name).stat().st_size > 1000
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".gif", ".png"]


def test_text_shows_the_requested_iterations_and_the_policy() -> None:
    result = run_cli("solve", "Maze-v0", "--show", "1,2,3,10")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for k in (1, 2, 3, 10):
        assert f"V_{k}:" in text
    assert "costs, minimised" in text
    policy = text.split("greedy policy:")[1].strip().splitlines()
    assert [row.split() for row in policy] == [
        ["→", "→", "→", "G"],
        ["↑", "#", "↑", "R"],
        ["↑", "→", "↑", "←"],
    ]


def test_policy_evaluation_of_the_4x4_gridworld_after_three_sweeps() -> None:
    solved = solve.solve("GridWorld-v0", "policy-evaluation", iterations=3)
    assert solved.solution.iterations == 3
    expected = [0, -2.4375, -2.9375, -3, -2.4375, -2.875, -3, -2.9375]  # Figure 4.1, k = 3
    np.testing.assert_allclose(solved.solution.values[:8], expected, atol=1e-4)


def test_the_other_convention_negates_the_values() -> None:
    as_costs = solve.solve("GridWorld5x5-v0", "value-iteration", objective="cost")
    as_rewards = solve.solve("GridWorld5x5-v0", "value-iteration")
    assert as_costs.mdp.objective == "cost"
    np.testing.assert_allclose(as_costs.solution.values, -as_rewards.solution.values, atol=1e-4)
    np.testing.assert_array_equal(as_costs.solution.policy, as_rewards.solution.policy)


def test_gymnasium_toy_text_and_a_users_env_with_a_transition_table() -> None:
    lake = solve.solve("FrozenLake-v1", "policy-iteration")
    assert lake.mdp.layout is not None and lake.mdp.num_states == 16
    assert lake.solution.converged
    chain = solve.solve("tests.user_envs:SlipperyChain", "value-iteration", gamma=0.9)
    # from state 2, moving right reaches the goal with probability 0.8 per try:
    # V(2) = 0.8 (1) + 0.2 * 0.9 V(2)  =>  V(2) = 0.8 / (1 - 0.18)
    assert chain.solution.values[2] == pytest.approx(0.8 / 0.82, abs=1e-4)
    assert list(chain.solution.policy[:3]) == [1, 1, 1]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["CartPole-v1"], ["'CartPole-v1' is not a finite MDP", "transition table"]),
        (["PendulumDiscrete-v1"], ["'PendulumDiscrete-v1' is not a finite MDP"]),
        (["Maz-v0"], ["unknown environment 'Maz-v0'", "Maze-v0"]),
        (["Maze-v0", "--method", "value-iter"], ["unknown planning method", "value-iteration"]),
        (["Maze-v0", "--gamma", "1.5"], ["gamma must lie in [0, 1]"]),
        (["Maze-v0", "--gamma", "1"], ["gamma = 1 needs episodes that end"]),
        (["Maze-v0", "--show", "1,x"], ["--show takes iteration numbers"]),
        (["Maze-v0", "--iterations", "-1"], ["iterations must be >= 0"]),
        (["Maze-v0", "--in-place"], ["in-place sweeps apply to policy-evaluation only"]),
    ],
)
def test_bad_input_is_one_sentence(args: list[str], fragments: list[str]) -> None:
    assert_one_sentence_error(run_cli("solve", *args), *fragments)
