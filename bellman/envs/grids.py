"""The lectures' and the textbook's finite MDPs, built as `FiniteMDP`s.

- `gridworld`: Sutton & Barto Example 4.1, the 4x4 grid with two terminal corners, -1 per move.
- `maze`: "get out of the maze" from the robotics lecture, a cost-minimisation MDP.
- `gridworld_5x5`: Sutton & Barto Example 3.5, with the A -> A' and B -> B' teleports.
- `cliff_walking`: Sutton & Barto Example 6.6.
- `windy_gridworld`: Sutton & Barto Example 6.5.
- `dyna_maze`: Sutton & Barto Example 8.1, the maze of Dyna-Q's planning experiment.
- `gamblers_problem`: Sutton & Barto Example 4.3.
- `jacks_car_rental`: Sutton & Barto Example 4.2.

Grid actions are, in order, up, right, down, left (gymnasium's CliffWalking order); state s sits
at row s // cols, column s % cols unless the layout says otherwise. Each builder returns a validated
MDP; `bellman.envs.finite` runs any of them as an environment.
"""

from __future__ import annotations

import numpy as np

from bellman import mdp as mdp_lib
from bellman.mdp import GRID_ACTIONS, GRID_MOVES, FiniteMDP, GridLayout


def _move(cell: tuple[int, int], action: int, shape: tuple[int, int]) -> tuple[int, int]:
    """The cell one step in the action's direction; moving off the grid leaves the cell as is."""
    r, c = cell[0] + GRID_MOVES[action][0], cell[1] + GRID_MOVES[action][1]
    return (r, c) if 0 <= r < shape[0] and 0 <= c < shape[1] else cell


def gridworld() -> FiniteMDP:
    """Example 4.1: 4x4, terminal corners (0, 0) and (3, 3), reward -1 on every transition,
    undiscounted. Under the equiprobable random policy v(1) = -14 (Figure 4.1)."""
    shape = (4, 4)
    layout = GridLayout.full(*shape, marks=(((0, 0), "T"), ((3, 3), "T")))
    index = {cell: s for s, cell in enumerate(layout.cells)}
    terminal = np.zeros(16, bool)
    terminal[[0, 15]] = True

    def outcomes(s: int, a: int) -> list[tuple[float, int, float]]:
        if terminal[s]:
            return [(1.0, s, 0.0)]
        return [(1.0, index[_move(layout.cells[s], a, shape)], -1.0)]

    return mdp_lib.from_transitions(
        16,
        4,
        outcomes,
        1.0,
        terminal=terminal,
        name="GridWorld-v0",
        action_names=GRID_ACTIONS,
        layout=layout,
        max_episode_steps=200,
    )


MAZE_GREEN, MAZE_RED, MAZE_BLOCKED = (0, 3), (1, 3), (1, 1)


def maze() -> FiniteMDP:
    """The robotics lecture's maze: 3 rows x 4 columns, cell (1, 1) blocked.

    The green cell (0, 3) costs -1 and the red cell (1, 3) costs +1 for every step spent there;
    both are absorbing (once entered, the robot stays); every other cell costs 0. Moving into the
    border or the blocked cell leaves the robot where it is. gamma = 0.9, and value iteration starts
    from V_0 = the cells' costs: V_{n+1}(s) = min_a [C(s) + gamma V_n(s')].
    """
    shape = (3, 4)
    cells = tuple((r, c) for r in range(3) for c in range(4) if (r, c) != MAZE_BLOCKED)
    layout = GridLayout(
        shape, cells, blocked=(MAZE_BLOCKED,), marks=((MAZE_GREEN, "G"), (MAZE_RED, "R"))
    )
    index = {cell: s for s, cell in enumerate(cells)}
    cost = np.zeros(len(cells))
    cost[index[MAZE_GREEN]], cost[index[MAZE_RED]] = -1.0, 1.0
    absorbing = {index[MAZE_GREEN], index[MAZE_RED]}

    def outcomes(s: int, a: int) -> list[tuple[float, int, float]]:
        if s in absorbing:
            return [(1.0, s, cost[s])]
        target = _move(cells[s], a, shape)
        s_next = index.get(target, s)  # the blocked cell is a wall
        return [(1.0, s_next, cost[s])]

    start = np.array([0.0 if s in absorbing else 1.0 for s in range(len(cells))])
    return mdp_lib.from_transitions(
        len(cells),
        4,
        outcomes,
        0.9,
        objective="cost",
        initial_values=cost,
        initial_distribution=start / start.sum(),
        name="Maze-v0",
        action_names=GRID_ACTIONS,
        layout=layout,
        max_episode_steps=100,
    )


def gridworld_5x5() -> FiniteMDP:
    """Example 3.5: 5x5; from A = (0, 1) every action moves to A' = (4, 1) with +10, from
    B = (0, 3) to B' = (2, 3) with +5; a move off the grid stays with -1; others 0. gamma = 0.9,
    a continuing task (run as an env, episodes are cut at 100 steps)."""
    shape = (5, 5)
    teleports = {(0, 1): ((4, 1), 10.0), (0, 3): ((2, 3), 5.0)}
    layout = GridLayout.full(
        *shape, marks=(((0, 1), "A"), ((4, 1), "A'"), ((0, 3), "B"), ((2, 3), "B'"))
    )
    index = {cell: s for s, cell in enumerate(layout.cells)}

    def outcomes(s: int, a: int) -> list[tuple[float, int, float]]:
        cell = layout.cells[s]
        if cell in teleports:
            target, reward = teleports[cell]
            return [(1.0, index[target], reward)]
        target = _move(cell, a, shape)
        return [(1.0, index[target], -1.0 if target == cell else 0.0)]

    return mdp_lib.from_transitions(
        25,
        4,
        outcomes,
        0.9,
        name="GridWorld5x5-v0",
        action_names=GRID_ACTIONS,
        layout=layout,
        max_episode_steps=100,
    )


CLIFF_START, CLIFF_GOAL = (3, 0), (3, 11)


def cliff_walking() -> FiniteMDP:
    """Example 6.6: 4x12, start (3, 0), goal (3, 11); stepping into the cliff (3, 1..10) costs
    -100 and sends the agent back to the start; every other move -1; undiscounted.

    The same layout, action order and rewards as gymnasium's CliffWalking-v1. Run as an env,
    episodes are cut at 1,000 steps (the textbook has no limit; a greedy policy read from a
    half-learned table can walk into a wall forever).
    """
    shape = (4, 12)
    cliff = {(3, c) for c in range(1, 11)}
    marks = ((CLIFF_START, "S"), (CLIFF_GOAL, "G"), *((cell, "C") for cell in sorted(cliff)))
    layout = GridLayout.full(*shape, marks=marks)
    index = {cell: s for s, cell in enumerate(layout.cells)}
    start, goal = index[CLIFF_START], index[CLIFF_GOAL]
    terminal = np.zeros(48, bool)
    terminal[goal] = True

    def outcomes(s: int, a: int) -> list[tuple[float, int, float]]:
        if s == goal:
            return [(1.0, s, 0.0)]
        target = _move(layout.cells[s], a, shape)
        if target in cliff:
            return [(1.0, start, -100.0)]
        return [(1.0, index[target], -1.0)]

    return mdp_lib.from_transitions(
        48,
        4,
        outcomes,
        1.0,
        terminal=terminal,
        initial_distribution=np.eye(48)[start],
        name="CliffWalking-v0",
        action_names=GRID_ACTIONS,
        layout=layout,
        max_episode_steps=1000,
    )


DYNA_START, DYNA_GOAL = (2, 0), (0, 8)
DYNA_WALLS = ((1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7))


def dyna_maze() -> FiniteMDP:
    """Example 8.1: 6x9, start (2, 0), goal (0, 8), walls in column 2 (rows 1-3), column 7
    (rows 0-2) and at (4, 5); reward 0 on every move except +1 on reaching the goal, which ends
    the episode; gamma = 0.95. A move into a wall or off the grid leaves the agent in place. The
    shortest path takes 14 moves (Figure 8.2's optimum).

    Run as an env, episodes are cut at 2,000 steps (the textbook has no limit; its first episode
    of Q-learning takes about 1,700 steps on average).
    """
    shape = (6, 9)
    walls = set(DYNA_WALLS)
    cells = tuple((r, c) for r in range(6) for c in range(9) if (r, c) not in walls)
    layout = GridLayout(
        shape, cells, blocked=DYNA_WALLS, marks=((DYNA_START, "S"), (DYNA_GOAL, "G"))
    )
    index = {cell: s for s, cell in enumerate(cells)}
    start, goal = index[DYNA_START], index[DYNA_GOAL]
    terminal = np.zeros(len(cells), bool)
    terminal[goal] = True

    def outcomes(s: int, a: int) -> list[tuple[float, int, float]]:
        if s == goal:
            return [(1.0, s, 0.0)]
        s_next = index.get(_move(cells[s], a, shape), s)  # a wall leaves the agent in place
        return [(1.0, s_next, 1.0 if s_next == goal else 0.0)]

    return mdp_lib.from_transitions(
        len(cells),
        4,
        outcomes,
        0.95,
        terminal=terminal,
        initial_distribution=np.eye(len(cells))[start],
        name="DynaMaze-v0",
        action_names=GRID_ACTIONS,
        layout=layout,
        max_episode_steps=2000,
    )


WINDY_START, WINDY_GOAL = (3, 0), (3, 7)
WIND = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)


def windy_gridworld() -> FiniteMDP:
    """Example 6.5: 7x10, start (3, 0), goal (3, 7); the wind of the current column (0 0 0 1 1 1
    2 2 1 0) pushes the agent that many cells up; -1 per step until the goal; undiscounted."""
    shape = (7, 10)
    layout = GridLayout.full(*shape, marks=((WINDY_START, "S"), (WINDY_GOAL, "G")))
    index = {cell: s for s, cell in enumerate(layout.cells)}
    start, goal = index[WINDY_START], index[WINDY_GOAL]
    terminal = np.zeros(70, bool)
    terminal[goal] = True

    def outcomes(s: int, a: int) -> list[tuple[float, int, float]]:
        if s == goal:
            return [(1.0, s, 0.0)]
        r, c = layout.cells[s]
        r, c = _move((r, c), a, shape)
        r = max(r - WIND[layout.cells[s][1]], 0)
        return [(1.0, index[(r, c)], -1.0)]

    return mdp_lib.from_transitions(
        70,
        4,
        outcomes,
        1.0,
        terminal=terminal,
        initial_distribution=np.eye(70)[start],
        name="WindyGridWorld-v0",
        action_names=GRID_ACTIONS,
        layout=layout,
        max_episode_steps=1000,
    )


def gamblers_problem(p_heads: float = 0.4, goal: int = 100) -> FiniteMDP:
    """Example 4.3: capital s in 0..goal; action a = stake 1..goal/2, at most min(s, goal - s)
    (a larger stake bets that maximum); heads with probability p_heads wins the stake, tails loses
    it; reward +1 on reaching the goal, 0 otherwise; 0 and goal are terminal; undiscounted."""
    num_actions = goal // 2
    terminal = np.zeros(goal + 1, bool)
    terminal[[0, goal]] = True

    def outcomes(s: int, a: int) -> list[tuple[float, int, float]]:
        if terminal[s]:
            return [(1.0, s, 0.0)]
        stake = min(a + 1, s, goal - s)
        win = s + stake
        return [(p_heads, win, 1.0 if win == goal else 0.0), (1 - p_heads, s - stake, 0.0)]

    return mdp_lib.from_transitions(
        goal + 1,
        num_actions,
        outcomes,
        1.0,
        terminal=terminal,
        name="GamblersProblem-v0",
        action_names=tuple(str(stake) for stake in range(1, num_actions + 1)),
    )


def _rental_location(
    max_cars: int, request_rate: float, return_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """One location for a day, from the cars there after the night's moves, n:
    T[n, m] = Pr(m cars at the end of the day) and E[n, m] = E[cars rented | m] (0 where T = 0).

    Requests ~ Poisson(request_rate), rented = min(requests, n); returns ~ Poisson(return_rate)
    arrive after the rentals, and cars beyond `max_cars` go back to the company.
    """
    from scipy import stats  # a second to import: only when this MDP is built

    t = np.zeros((max_cars + 1, max_cars + 1))
    rented_mass = np.zeros_like(t)
    for n in range(max_cars + 1):
        rented = np.arange(n + 1)
        p_rented = stats.poisson.pmf(rented, request_rate)
        p_rented[-1] = stats.poisson.sf(n - 1, request_rate)  # requests >= n rent all n cars
        for k, p_k in zip(rented, p_rented, strict=True):
            left = n - k
            returned = np.arange(max_cars - left + 1)
            p_returned = stats.poisson.pmf(returned, return_rate)
            p_returned[-1] = stats.poisson.sf(max_cars - left - 1, return_rate)
            t[n, left + returned] += p_k * p_returned
            rented_mass[n, left + returned] += p_k * p_returned * k
    expected = np.divide(rented_mass, t, out=np.zeros_like(t), where=t > 0)
    return t, expected


def jacks_car_rental(
    max_cars: int = 20,
    max_move: int = 5,
    rent_reward: float = 10.0,
    move_cost: float = 2.0,
    request_rates: tuple[float, float] = (3.0, 4.0),
    return_rates: tuple[float, float] = (3.0, 2.0),
    gamma: float = 0.9,
) -> FiniteMDP:
    """Example 4.2: state (cars at location 1, cars at location 2), 0..20 each; action = cars moved
    overnight from location 1 to 2, -5..+5 (more than a location has moves all it has), $2 each;
    $10 per car rented; requests and returns are Poisson (3, 4 and 3, 2); gamma = 0.9.

    R[s, a, s'] is the expected reward given the next state (the day's rentals are not part of the
    state), so the expected reward of (s, a) is exact.
    """
    n = max_cars + 1
    t1, rented1 = _rental_location(max_cars, request_rates[0], return_rates[0])
    t2, rented2 = _rental_location(max_cars, request_rates[1], return_rates[1])
    moves = np.arange(-max_move, max_move + 1)
    p = np.zeros((n * n, len(moves), n * n))
    r = np.zeros_like(p)
    for c1 in range(n):
        for c2 in range(n):
            s = c1 * n + c2
            for a, move in enumerate(moves.tolist()):
                moved = min(move, c1) if move >= 0 else -min(-move, c2)
                m1, m2 = min(c1 - moved, max_cars), min(c2 + moved, max_cars)
                p[s, a] = np.outer(t1[m1], t2[m2]).ravel()
                reward = rent_reward * (rented1[m1][:, None] + rented2[m2][None, :])
                r[s, a] = (reward - move_cost * abs(moved)).ravel()
    layout = GridLayout.full(n, n)
    return mdp_lib.make(
        p,
        r,
        gamma,
        name="JacksCarRental-v0",
        action_names=tuple(f"{m:+d}" if m else "0" for m in moves),
        layout=layout,
        max_episode_steps=100,
    )
