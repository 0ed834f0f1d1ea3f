"""Dynamic programming against Sutton & Barto's numbers, across methods and every finite MDP, and
against an independent numpy model of Jack's car rental; plain, jitted and vmapped."""

from __future__ import annotations

import json
import math
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman import mdp as mdp_lib
from bellman.algos import dp
from bellman.envs import finite, grids
from bellman.errors import ConfigError, MDPError

# Sutton & Barto (2nd ed.), shared/reference/sutton-barto.md (recomputed exactly there).
# Example 4.1 / Figure 4.1, synchronous sweeps of the equiprobable random policy.
EX41_SWEEPS = {
    1: [0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0],
    2: [0, -1.75, -2, -2, -1.75, -2, -2, -2, -2, -2, -2, -1.75, -2, -2, -1.75, 0],
    3: [0, -2.4375, -2.9375, -3, -2.4375, -2.875, -3, -2.9375,
        -2.9375, -3, -2.875, -2.4375, -3, -2.9375, -2.4375, 0],
    10: [0, -6.138, -8.3524, -8.9673, -6.138, -7.7374, -8.4278, -8.3524,
         -8.3524, -8.4278, -7.7374, -6.138, -8.9673, -8.3524, -6.138, 0],
}  # fmt: skip
EX41_V_PI = [0, -14, -20, -22, -14, -18, -20, -20, -20, -20, -18, -14, -22, -20, -14, 0]
EX41_IN_PLACE_ROW0 = [0, -1, -1.25, -1.3125]
EX41_SWEEPS_TO_1E4 = {"synchronous": 173, "in place": 114}
# Examples 3.5 / 3.8: the 5x5 grid, gamma = 0.9 (Figures 3.2 and 3.5).
EX35_V_RANDOM = [
    3.3090, 8.7893, 4.4276, 5.3224, 1.4922,
    1.5216, 2.9923, 2.2501, 1.9076, 0.5474,
    0.0508, 0.7382, 0.6731, 0.3582, -0.4031,
    -0.9736, -0.4355, -0.3549, -0.5856, -1.1831,
    -1.8577, -1.3452, -1.2293, -1.4229, -1.9752,
]  # fmt: skip
EX35_V_STAR = [
    21.9775, 24.4194, 21.9775, 19.4194, 17.4775,
    19.7797, 21.9775, 19.7797, 17.8018, 16.0216,
    17.8018, 19.7797, 17.8018, 16.0216, 14.4194,
    16.0216, 17.8018, 16.0216, 14.4194, 12.9775,
    14.4194, 16.0216, 14.4194, 12.9775, 11.6797,
]  # fmt: skip
V_STAR_A = 10 / (1 - 0.9**5)  # 24.4194: A -> A' and four steps back, forever

MODES = ["plain", "jit", "vmap"]


def plan_three_ways(mdp):
    """Value iteration, Q-value iteration and policy iteration in one program."""
    return dp.value_iteration(mdp), dp.q_value_iteration(mdp), dp.policy_iteration(mdp)


@cache
def jitted(fn, *static):
    """One jitted function per (fn, static keywords), so that tests share compiled programs."""
    return jax.jit(partial(fn, **dict(static)))


def run(fn, mode, mdp, **static):
    """fn(mdp, **static): plain, jitted, or vmapped over two stacked copies of the MDP (which
    must give the same answer twice; the first is returned)."""
    if mode == "plain":
        return fn(mdp, **static)
    if mode == "jit":
        return jitted(fn, *sorted(static.items()))(mdp)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), mdp)
    out = jax.jit(jax.vmap(partial(fn, **static)))(stacked)
    jax.tree.map(lambda x: np.testing.assert_array_equal(x[0], x[1]), out)
    return jax.tree.map(lambda x: x[0], out)


# ----- Sutton & Barto's numbers -----


@pytest.mark.parametrize("mode", MODES)
def test_ex41_synchronous_sweeps_and_v_pi(mode: str) -> None:
    mdp = grids.gridworld()
    result = run(dp.policy_evaluation, mode, mdp, tol=0.0, max_iterations=300)
    assert int(result.iterations) == 300 and result.history.shape == (301, 16)
    np.testing.assert_array_equal(result.history[0], np.zeros(16))
    for k, expected in EX41_SWEEPS.items():  # Figure 4.1
        np.testing.assert_allclose(result.history[k], expected, atol=1e-3, err_msg=f"k = {k}")
    np.testing.assert_allclose(result.values, EX41_V_PI, atol=1e-3)  # 300 sweeps: converged
    np.testing.assert_allclose(run(dp.evaluate_exact, mode, mdp), EX41_V_PI, atol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_ex41_in_place_sweeps(mode: str) -> None:
    mdp = grids.gridworld()
    result = run(dp.policy_evaluation, mode, mdp, in_place=True, tol=1e-6, max_iterations=1000)
    np.testing.assert_allclose(result.history[1, :4], EX41_IN_PLACE_ROW0, atol=1e-6)
    assert bool(result.converged)
    np.testing.assert_allclose(result.values, EX41_V_PI, atol=1e-3)


def test_ex41_in_place_converges_in_fewer_sweeps() -> None:
    mdp = grids.gridworld()
    synchronous = dp.solve(mdp, "policy-evaluation", tol=1e-4)
    in_place = dp.solve(mdp, "policy-evaluation", tol=1e-4, in_place=True)
    assert synchronous.converged and in_place.converged
    assert synchronous.iterations == EX41_SWEEPS_TO_1E4["synchronous"]
    # the 114th in-place sweep changes a value by 9.95e-5, 1 float32 ulp of V from tol: 114 or 115
    assert abs(in_place.iterations - EX41_SWEEPS_TO_1E4["in place"]) <= 1
    assert in_place.history.shape == (in_place.iterations + 1, 16)


@pytest.mark.parametrize("mode", MODES)
def test_ex35_random_policy(mode: str) -> None:
    mdp = grids.gridworld_5x5()
    np.testing.assert_allclose(run(dp.evaluate_exact, mode, mdp), EX35_V_RANDOM, atol=1e-3)
    iterative = run(dp.policy_evaluation, mode, mdp)
    np.testing.assert_allclose(iterative.values, EX35_V_RANDOM, atol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_ex35_optimal_values(mode: str) -> None:
    for result in run(plan_three_ways, mode, grids.gridworld_5x5()):
        assert bool(result.converged)
        np.testing.assert_allclose(result.values, EX35_V_STAR, atol=1e-3)
        assert abs(float(result.values[1]) - V_STAR_A) < 1e-3  # state 1 is A = (0, 1)


# ----- every method agrees on every finite MDP -----


@pytest.mark.parametrize("env_id", [*finite.MDPS, *finite.TOY_TEXT])
def test_value_and_policy_iteration_agree(env_id: str) -> None:
    mdp = finite.MDPS[env_id]() if env_id in finite.MDPS else finite.toy_text_mdp(env_id)
    vi, qvi, pi = jitted(plan_three_ways)(mdp)
    assert bool(vi.converged) and bool(qvi.converged) and bool(pi.converged)
    scale = max(1.0, float(jnp.max(jnp.abs(pi.values))))
    np.testing.assert_allclose(vi.values, pi.values, atol=1e-4 * scale)
    np.testing.assert_allclose(qvi.values, vi.values, atol=1e-4 * scale)
    # the greedy policies may break near-ties differently, but their actions are worth the same
    q_star = np.asarray(pi.q_values)
    states = np.arange(mdp.num_states)
    for other in (vi, qvi):
        np.testing.assert_allclose(
            q_star[states, np.asarray(other.policy)],
            q_star[states, np.asarray(pi.policy)],
            atol=1e-4 * scale,
        )
    # and the optimal values are a fixed point of the Bellman optimality equation
    q = dp.q_from_values(mdp, pi.values)
    np.testing.assert_allclose(mdp_lib.best(q, mdp.minimize), pi.values, atol=1e-4 * scale)


# ----- the maze (cost convention) -----


def test_maze_values_policy_and_history() -> None:
    mdp = grids.maze()
    layout = mdp.layout
    assert layout is not None
    index = {cell: s for s, cell in enumerate(layout.cells)}
    green, red = index[grids.MAZE_GREEN], index[grids.MAZE_RED]
    solution = dp.solve(mdp, "value-iteration")
    costs = np.zeros(mdp.num_states)
    costs[green], costs[red] = -1.0, 1.0
    np.testing.assert_array_equal(solution.history[0], costs)  # V_0 = C
    left_of_green = index[(0, 2)]
    # V_1(s) = min_a [C(s) + 0.9 V_0(s')]
    assert solution.history[1][left_of_green] == pytest.approx(0.9 * -1.0)
    assert solution.history[1][green] == pytest.approx(-1.0 + 0.9 * -1.0)
    assert solution.values[green] == pytest.approx(-10.0, abs=1e-3)  # -1 / (1 - 0.9)
    assert solution.values[red] == pytest.approx(10.0, abs=1e-3)
    # following the greedy policy from every other cell leads into the green cell, never the red
    for start in set(range(mdp.num_states)) - {green, red}:
        s, path = start, [start]
        for _ in range(mdp.num_states):
            action = int(solution.policy[s])
            row, col = layout.cells[s]
            drow, dcol = mdp_lib.GRID_MOVES[action]
            s = index.get((row + drow, col + dcol), s)  # walls and the border stop the robot
            path.append(s)
            if s in (green, red):
                break
        assert s == green, f"from {layout.cells[start]} the policy goes {path}"


# ----- conventions -----


@pytest.mark.parametrize("env_id", ["GridWorld5x5-v0", "Maze-v0"])
def test_negated_rewards_as_costs_give_negated_values(env_id: str) -> None:
    mdp = finite.MDPS[env_id]()
    flipped = mdp.replace(
        rewards=-mdp.rewards,
        initial_values=-mdp.initial_values,
        objective="reward" if mdp.minimize else "cost",
    )
    plan = jitted(plan_three_ways)
    for ours, theirs in zip(plan(mdp), plan(flipped), strict=True):
        np.testing.assert_allclose(theirs.values, -ours.values, atol=1e-5)
        np.testing.assert_allclose(theirs.q_values, -ours.q_values, atol=1e-5)
        np.testing.assert_allclose(theirs.history, -ours.history, atol=1e-5)
        np.testing.assert_array_equal(theirs.policy, ours.policy)


def test_vmap_over_gamma_equals_one_at_a_time() -> None:
    mdp = grids.gridworld_5x5()
    gammas = jnp.array([0.0, 0.5, 0.8, 0.9, 0.95])
    plan = jax.jit(jax.vmap(lambda gamma: dp.value_iteration(mdp.replace(gamma=gamma))))
    batched = plan(gammas)
    for i, gamma in enumerate(gammas):
        single = dp.solve(mdp.replace(gamma=gamma), "value-iteration")
        assert int(batched.iterations[i]) == single.iterations
        np.testing.assert_allclose(batched.values[i], single.values, atol=1e-6)
        np.testing.assert_array_equal(batched.policy[i], single.policy)
        np.testing.assert_allclose(
            batched.history[i, : single.iterations + 1], single.history, atol=1e-5
        )
    # v*(A) = 10 / (1 - gamma^5) at the discounts for which looping through A is best
    np.testing.assert_allclose(batched.values[2:, 1], 10 / (1 - gammas[2:] ** 5), rtol=1e-4)


def test_two_stacked_mdps() -> None:
    base = grids.gridworld_5x5()
    other = base.replace(rewards=2.0 * base.rewards, gamma=jnp.float32(0.8))
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), base, other)
    batched = jax.jit(jax.vmap(plan_three_ways))(stacked)
    for i, mdp in enumerate((base, other)):
        single = jitted(plan_three_ways)(mdp)
        for x, y in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(x[i], y, atol=1e-5)
    # rewards doubled, values doubled: twice v* of the same grid at gamma = 0.8
    halved = jitted(plan_three_ways)(base.replace(gamma=jnp.float32(0.8)))[0]
    np.testing.assert_allclose(batched[0].values[1], 2 * halved.values, atol=1e-4)


def _random_mdp(seed: int, num_states: int = 12, num_actions: int = 3, gamma: float = 0.95):
    rng = np.random.default_rng(seed)
    p = rng.random((num_states, num_actions, num_states)) ** 3
    p /= p.sum(-1, keepdims=True)
    terminal = np.zeros(num_states, bool)
    terminal[-1] = True
    mdp = mdp_lib.make(p, rng.normal(size=p.shape), gamma, terminal=terminal)
    policy = rng.random((num_states, num_actions))
    return mdp, policy / policy.sum(-1, keepdims=True)


def _numpy_v_pi(mdp, policy) -> np.ndarray:
    p, r = np.asarray(mdp.transitions, np.float64), np.asarray(mdp.rewards, np.float64)
    r_pi = np.einsum("sa,sat,sat->s", policy, p, r)
    p_pi = np.einsum("sa,sat->st", policy, p)
    live = ~np.asarray(mdp.terminal)
    v = np.zeros(len(r_pi))  # terminal states 0; the others solve (I - gamma P_pi) v = r_pi
    a = np.eye(live.sum()) - float(mdp.gamma) * p_pi[np.ix_(live, live)]
    v[live] = np.linalg.solve(a, r_pi[live])
    return v


@pytest.mark.parametrize("mode", ["plain", "jit", "vmap"])
def test_exact_evaluation_matches_numpy_solve(mode: str) -> None:
    problems = [_random_mdp(seed) for seed in range(3)]
    expected = [_numpy_v_pi(mdp, policy) for mdp, policy in problems]
    if mode == "vmap":  # three different MDPs and policies in one call
        mdps = jax.tree.map(lambda *xs: jnp.stack(xs), *(m for m, _ in problems))
        policies = jnp.asarray(np.stack([p for _, p in problems]), jnp.float32)
        ours = jax.jit(jax.vmap(dp.evaluate_exact))(mdps, policies)
    else:
        fn = jax.jit(dp.evaluate_exact) if mode == "jit" else dp.evaluate_exact
        ours = [fn(mdp, jnp.asarray(policy, jnp.float32)) for mdp, policy in problems]
    for v, v_numpy in zip(ours, expected, strict=True):
        np.testing.assert_allclose(v, v_numpy, atol=1e-4)


def test_linear_solve_pivots() -> None:
    # a zero on the diagonal: elimination without row exchanges would divide by zero
    a = np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]], np.float32)
    b = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_allclose(
        dp._solve_linear(jnp.asarray(a), jnp.asarray(b)), np.linalg.solve(a, b), atol=1e-5
    )


# ----- solve: the host entry point -----


def test_solve_returns_numpy_and_runs_exactly_n_sweeps() -> None:
    mdp = grids.gridworld()
    solution = dp.solve(mdp, "policy-evaluation", iterations=3)
    assert isinstance(solution.values, np.ndarray) and solution.iterations == 3
    assert solution.history.shape == (4, 16) and not solution.converged
    np.testing.assert_allclose(solution.history[3], EX41_SWEEPS[3], atol=1e-6)
    exact = dp.solve(mdp, "exact-evaluation")
    assert exact.iterations == 1 and exact.history.shape == (2, 16) and exact.converged
    np.testing.assert_allclose(exact.values, EX41_V_PI, atol=1e-3)
    json.dumps(exact.to_dict())
    deterministic = dp.solve(mdp, "exact-evaluation", policy=np.asarray(exact.policy))
    np.testing.assert_allclose(deterministic.values[1:4], [-1, -2, -3], atol=1e-4)


def test_bad_mdps_are_one_clear_sentence() -> None:
    p = np.zeros((2, 1, 2))
    p[:, 0, 0] = 0.7
    with pytest.raises(MDPError, match=r"not stochastic.*sum to 0\.7, not 1"):
        mdp_lib.make(p, np.zeros(2), 0.9)
    p[:, 0, 1] = 0.3
    with pytest.raises(MDPError, match=r"gamma must lie in \[0, 1\], not 1.5"):
        mdp_lib.make(p, np.zeros(2), 1.5)
    stuck = np.zeros((2, 1, 2))
    stuck[0, 0, 0] = stuck[1, 0, 1] = 1.0  # state 1 loops on itself forever
    with pytest.raises(MDPError, match="no terminal state can be reached from state 1"):
        mdp_lib.make(stuck, np.zeros(2), 1.0, terminal=[True, False])
    continuing = grids.gridworld_5x5().replace(gamma=jnp.float32(1.0))
    with pytest.raises(MDPError, match="gamma = 1 needs episodes that end"):
        dp.solve(continuing, "value-iteration")


@pytest.mark.parametrize("method", ["policy-evaluation", "exact-evaluation", "policy-iteration"])
def test_gamma_one_policy_that_never_ends_is_refused(method: str) -> None:
    always_up = np.zeros(16, np.int32)  # in the top row, "up" stays put forever
    with pytest.raises(MDPError, match="never reaches a terminal state from state 1"):
        dp.solve(grids.gridworld(), method, policy=always_up)


def test_bad_settings_are_config_errors() -> None:
    mdp = grids.gridworld()
    with pytest.raises(ConfigError, match="did you mean: value-iteration"):
        dp.solve(mdp, "value-iteraton")
    with pytest.raises(ConfigError, match="policy"):
        dp.solve(mdp, "exact-evaluation", policy=np.zeros((16, 3)))
    with pytest.raises(ConfigError, match="sum to 1"):
        dp.solve(mdp, "exact-evaluation", policy=np.full((16, 4), 0.3))
    with pytest.raises(ConfigError, match="in-place"):
        dp.solve(mdp, "value-iteration", in_place=True)
    with pytest.raises(ConfigError, match="takes no policy"):
        dp.solve(mdp, "value-iteration", policy=np.zeros(16, np.int32))


# ----- more known results -----


def test_gamblers_problem_values() -> None:
    solution = dp.solve(grids.gamblers_problem(p_heads=0.4), "value-iteration")
    # with p_h < 1/2 bold play is optimal: V*(50) = p, V*(25) = p^2, V*(75) = p + (1 - p) p
    assert solution.values[50] == pytest.approx(0.4, abs=1e-5)
    assert solution.values[25] == pytest.approx(0.16, abs=1e-5)
    assert solution.values[75] == pytest.approx(0.64, abs=1e-5)


def _poisson(rate: float, n: int) -> np.ndarray:
    return np.array([math.exp(-rate) * rate**k / math.factorial(k) for k in range(n)])


def _jacks_numpy(max_cars: int = 20, max_move: int = 5, cut: int = 30):
    """An independent model of Example 4.2: P[s, a, s'] and r(s, a) by summing over every
    number of requests and returns below `cut` (the Poisson mass beyond is below 1e-13)."""
    n = max_cars + 1

    def location(request_rate: float, return_rate: float) -> tuple[np.ndarray, np.ndarray]:
        t, rented = np.zeros((n, n)), np.zeros(n)
        p_returns = _poisson(return_rate, cut)
        for cars in range(n):
            for requests, p_req in enumerate(_poisson(request_rate, cut)):
                k = min(requests, cars)
                rented[cars] += p_req * k
                for returns, p_ret in enumerate(p_returns):
                    t[cars, min(cars - k + returns, max_cars)] += p_req * p_ret
        return t, rented

    (t1, rented1), (t2, rented2) = location(3, 3), location(4, 2)
    moves = range(-max_move, max_move + 1)
    p, r = np.zeros((n * n, len(moves), n * n)), np.zeros((n * n, len(moves)))
    for c1 in range(n):
        for c2 in range(n):
            for a, move in enumerate(moves):
                moved = min(move, c1) if move >= 0 else -min(-move, c2)
                m1, m2 = min(c1 - moved, max_cars), min(c2 + moved, max_cars)
                p[c1 * n + c2, a] = np.outer(t1[m1], t2[m2]).ravel()
                r[c1 * n + c2, a] = 10 * (rented1[m1] + rented2[m2]) - 2 * abs(moved)
    return p, r


def _numpy_policy_iteration(p, r, gamma, policy):
    states = np.arange(len(policy))
    for step in range(1, 100):
        v = np.linalg.solve(np.eye(len(policy)) - gamma * p[states, policy], r[states, policy])
        q = r + gamma * p @ v
        better = q.max(1) - q[states, policy] > 1e-9
        new = np.where(better, q.argmax(1), policy)
        if (new == policy).all():
            return v, q, policy, step
        policy = new
    raise AssertionError("numpy policy iteration did not converge")


def test_jacks_car_rental_policy_iteration() -> None:
    mdp = grids.jacks_car_rental()
    p, r = _jacks_numpy()
    np.testing.assert_allclose(mdp.transitions, p, atol=1e-6)
    np.testing.assert_allclose(mdp.expected_rewards(), r, atol=1e-3)
    no_moves = np.full(mdp.num_states, mdp.action_names.index("0"), np.int32)
    ours = dp.solve(mdp, "policy-iteration", policy=no_moves)
    v, q, _, steps = _numpy_policy_iteration(p, r, 0.9, no_moves)
    # Figure 4.2: pi_0 (no moves) ... pi_4, which the fifth improvement step finds stable
    assert ours.converged and ours.iterations == steps == 5
    np.testing.assert_allclose(ours.values, v, atol=0.05)  # float32 on values of 420..640
    states = np.arange(mdp.num_states)
    chosen = q[states, ours.policy]
    np.testing.assert_allclose(chosen, q.max(1), atol=0.05)
    # Figure 4.2's corners: location 1 full and 2 empty -> move the most cars (5) from 1 to 2;
    # location 2 full and 1 empty -> move cars the other way
    assert mdp.action_names[ours.policy[20 * 21 + 0]] == "+5"
    assert mdp.action_names[ours.policy[0 * 21 + 20]].startswith("-")
