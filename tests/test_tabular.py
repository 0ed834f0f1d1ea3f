"""Tabular TD learning: the updates on hand-computed numbers, and the textbook's results with many
vmapped runs (Sutton & Barto, Example 6.6; the robotics lecture's discretised pendulum)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman.algos import dp, tabular
from bellman.envs import finite, grids, registry
from bellman.envs.spaces import Box, Discrete, EnvSpec
from bellman.errors import ConfigError, EnvError
from bellman.rollout import Rollout

SPEC = EnvSpec(
    id="two-states",
    obs_shape=(),
    obs_dtype="int32",
    action_space=Discrete(2),
    max_episode_steps=None,
    num_states=2,
)


def one_step(s: int, a: int, r: float, s_next: int, terminated=False, truncated=False) -> Rollout:
    """A rollout `[1, 1]` holding one transition."""
    return Rollout(
        obs=jnp.array([[s]], jnp.int32),
        action=jnp.array([[a]], jnp.int32),
        reward=jnp.array([[r]], jnp.float32),
        terminated=jnp.array([[terminated]]),
        truncated=jnp.array([[truncated]]),
        next_obs=jnp.array([[s_next]], jnp.int32),
        policy_info=None,
    )


def state_with(config: tabular.TabularConfig, q: list[list[float]]) -> tabular.TabularState:
    state = tabular.init(jax.random.PRNGKey(0), config, SPEC, 10)
    return state.replace(q=jnp.asarray(q, jnp.float32))


Q = [[1.0, 2.0], [4.0, 3.0]]


def test_q_learning_target_is_the_max_and_termination_stops_it() -> None:
    config = tabular.TabularConfig(method="q-learning", alpha=0.5, gamma=0.9)
    state = state_with(config, Q)
    new, _ = tabular.learn(config, SPEC, state, one_step(0, 1, 1.0, 1), jax.random.PRNGKey(1))
    # Q(0,1) + alpha (r + gamma max_a Q(1, a) - Q(0,1)) = 2 + 0.5 (1 + 0.9 * 4 - 2)
    assert float(new.q[0, 1]) == pytest.approx(2.0 + 0.5 * (1.0 + 3.6 - 2.0))
    ended = one_step(0, 1, 1.0, 1, terminated=True)
    new, _ = tabular.learn(config, SPEC, state, ended, jax.random.PRNGKey(1))
    assert float(new.q[0, 1]) == pytest.approx(2.0 + 0.5 * (1.0 - 2.0))
    cut = one_step(0, 1, 1.0, 1, truncated=True)  # a time limit still bootstraps
    new, _ = tabular.learn(config, SPEC, state, cut, jax.random.PRNGKey(1))
    assert float(new.q[0, 1]) == pytest.approx(2.0 + 0.5 * (1.0 + 3.6 - 2.0))


def test_cost_convention_minimises() -> None:
    config = tabular.TabularConfig(method="q-learning", alpha=0.5, gamma=0.9, objective="cost")
    state = state_with(config, Q)
    # reward -1 is a cost of +1; the target takes min_a Q(1, a) = 3
    new, _ = tabular.learn(config, SPEC, state, one_step(0, 1, -1.0, 1), jax.random.PRNGKey(1))
    assert float(new.q[0, 1]) == pytest.approx(2.0 + 0.5 * (1.0 + 0.9 * 3.0 - 2.0))
    assert int(tabular.greedy(config, SPEC, state, jnp.array([1]))[0]) == 1  # argmin


def test_expected_sarsa_target_is_the_behaviour_policys_mean() -> None:
    config = tabular.TabularConfig(method="expected-sarsa", alpha=1.0, gamma=1.0, epsilon=0.2)
    state = state_with(config, Q)
    new, _ = tabular.learn(config, SPEC, state, one_step(0, 0, 0.0, 1), jax.random.PRNGKey(1))
    # pi(.|1) = 0.9 on the greedy action 0, 0.1 on action 1
    assert float(new.q[0, 0]) == pytest.approx(0.9 * 4.0 + 0.1 * 3.0)


def test_sarsa_updates_with_the_next_action_taken() -> None:
    config = tabular.TabularConfig(method="sarsa", alpha=0.5, gamma=0.9)
    state = state_with(config, Q)
    # the first step only remembers (S, A, R, S'); nothing is updated yet
    state, _ = tabular.learn(config, SPEC, state, one_step(0, 1, 1.0, 1), jax.random.PRNGKey(1))
    np.testing.assert_array_equal(np.asarray(state.q), Q)
    # the next step's A' = 1 in S' = 1 completes it: Q(0,1) += alpha (r + gamma Q(1, 1) - Q(0,1))
    state, _ = tabular.learn(config, SPEC, state, one_step(1, 1, 0.0, 0), jax.random.PRNGKey(1))
    assert float(state.q[0, 1]) == pytest.approx(2.0 + 0.5 * (1.0 + 0.9 * 3.0 - 2.0))


def test_td0_prediction_update() -> None:
    config = tabular.TabularConfig(method="td0", alpha=0.5, gamma=0.9)
    state = tabular.init(jax.random.PRNGKey(0), config, SPEC, 10)
    state = state.replace(v=jnp.array([1.0, 2.0]))
    new, _ = tabular.learn(config, SPEC, state, one_step(0, 0, 1.0, 1), jax.random.PRNGKey(1))
    assert float(new.v[0]) == pytest.approx(1.0 + 0.5 * (1.0 + 0.9 * 2.0 - 1.0))


def test_epsilon_greedy_probabilities_and_decay() -> None:
    config = tabular.TabularConfig(epsilon=0.1, epsilon_decay_steps=100)
    state = state_with(config, [[1.0, 1.0], [0.0, 5.0]])
    start = tabular.behaviour_probs(config, state, jnp.array([0, 1]))
    np.testing.assert_allclose(start, [[0.5, 0.5], [0.5, 0.5]])  # epsilon starts at 1
    later = tabular.behaviour_probs(config, state.replace(steps=jnp.int32(100)), jnp.array([0, 1]))
    np.testing.assert_allclose(later, [[0.5, 0.5], [0.05, 0.95]], rtol=1e-6)  # ties shared


def test_tabular_needs_a_finite_env() -> None:
    config = tabular.TabularConfig()
    with pytest.raises(EnvError, match="finite env"):
        tabular.check_env(config, registry.resolve("CartPole-v1").spec)
    continuous_actions = dataclasses.replace(SPEC, action_space=Box((1,), (-2.0,), (2.0,)))
    with pytest.raises(EnvError, match="finitely many actions"):
        tabular.check_env(config, continuous_actions)


# ----- the textbook's results, many runs vmapped -----


def online_returns(run_dir: Path) -> np.ndarray:
    """`[records, seeds]` mean training-episode return of each logged chunk."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return np.array([r["episode_return"] for r in records if "episode_return" in r], np.float64)


CLIFF = {"steps": 25_000, "seeds": 16, "gamma": 1.0, "alpha": 0.5, "epsilon": 0.1}


@pytest.fixture(scope="module")
def cliff_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bellman.Run]:
    out = tmp_path_factory.mktemp("cliff")
    return {
        method: bellman.train(
            method, env="CliffWalking-v0", out=out / method, progress=False, evals=0, **CLIFF
        )
        for method in ("q-learning", "sarsa")
    }


def test_sarsa_earns_more_online_than_q_learning_on_the_cliff(
    cliff_runs: dict[str, bellman.Run],
) -> None:
    # Example 6.6 / Figure 6.4: with epsilon = 0.1 Q-learning walks the cliff edge and falls now
    # and then (online return about -50); SARSA learns the safer path (about -25)
    late = {}
    for method, run in cliff_runs.items():
        returns = online_returns(run.run_dir)
        late[method] = np.nanmean(returns[len(returns) // 2 :], axis=0)  # per seed
    assert (late["sarsa"] > late["q-learning"]).mean() >= 0.75, late
    assert np.mean(late["sarsa"]) > np.mean(late["q-learning"]) + 10, late
    assert -45 < np.mean(late["sarsa"]) < -15, late
    assert -60 < np.mean(late["q-learning"]) < -40, late


def test_greedy_policies_q_learning_on_the_edge_sarsa_on_the_detour(
    cliff_runs: dict[str, bellman.Run],
) -> None:
    optimum = dp.solve(finite.MDPS["CliffWalking-v0"](), "value-iteration")
    start = int(np.argmax(np.asarray(finite.MDPS["CliffWalking-v0"]().initial_distribution)))
    assert optimum.values[start] == pytest.approx(-13.0)  # 13 steps along the edge
    q_returns = np.asarray(cliff_runs["q-learning"].summary["final_return_per_seed"])
    np.testing.assert_array_equal(q_returns, -13.0)  # every seed's greedy policy is optimal
    # SARSA learns the values of its epsilon-greedy policy, which keeps away from the edge: the
    # greedy policy of those values takes the detour (-15 to -19). Far from the path its values
    # are noisy at alpha = 0.5 and the greedy policy can bump into a wall forever (an evaluation
    # episode then runs to the time limit): seeds that reach the goal all take the detour.
    sarsa_returns = np.asarray(cliff_runs["sarsa"].summary["final_return_per_seed"])
    reached = sarsa_returns > -100
    assert reached.mean() >= 0.5, sarsa_returns
    assert ((sarsa_returns[reached] <= -15) & (sarsa_returns[reached] >= -21)).all(), sarsa_returns


def test_the_run_directory_of_a_tabular_run(cliff_runs: dict[str, bellman.Run]) -> None:
    run = cliff_runs["q-learning"]
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["algo"] == "q-learning" and summary["seeds"] == CLIFF["seeds"]
    assert (run.run_dir / "learning_curve.png").stat().st_size > 0
    assert (run.run_dir / "policy.png").stat().st_size > 0  # values and greedy policy


def random_play_return(env_id: str, episodes: int = 50) -> float:
    """The mean return of uniformly random actions in the gymnasium twin of `env_id`."""
    env, rng, returns = gym.make(env_id), np.random.default_rng(0), []
    for episode in range(episodes):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(rng.integers(env.action_space.n))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def test_q_learning_on_the_discretised_pendulum_beats_random_play(tmp_path: Path) -> None:
    # the robotics lecture's exercise: (theta, theta_dot) in 21 x 21 bins, 5 torques
    run = bellman.train(
        "q-learning",
        env="PendulumDiscrete-v1",
        steps=1_000_000,
        seeds=8,
        out=tmp_path / "run",
        progress=False,
        evals=0,
        gamma=0.98,
        alpha=0.2,
        epsilon=0.05,
        epsilon_decay_steps=300_000,
    )
    learned = np.asarray(run.summary["final_return_per_seed"])  # greedy, 20 episodes per seed
    random_play = random_play_return("bellman/PendulumDiscrete-v1")
    assert random_play < -1000, random_play  # about -1200: the pendulum mostly hangs and swings
    assert learned.mean() > random_play + 600, (learned, random_play)
    assert learned.min() > random_play + 400, (learned, random_play)  # every seed swings it up


# ----- Dyna-Q -----


def dyna_run(config: tabular.TabularConfig, steps: int, seed: int = 0) -> tabular.TabularState:
    """`steps` env steps of `config` on the Dyna Maze, one env, one step at a time."""
    env = finite.FiniteMDPEnv(grids.dyna_maze())

    def step(carry: tuple, key: jax.Array) -> tuple[tuple, None]:
        algo, env_state, obs = carry
        act_key, env_key, learn_key = jax.random.split(key, 3)
        action, _ = tabular.act(config, env.spec, algo, obs[None], act_key)
        env_state, ts = env.step(env_key, env_state, action[0])
        rollout = Rollout(
            obs=obs[None, None],
            action=action[None],
            reward=ts.reward[None, None],
            terminated=ts.terminated[None, None],
            truncated=ts.truncated[None, None],
            next_obs=ts.final_obs[None, None],
            policy_info=None,
        )
        algo, _ = tabular.learn(config, env.spec, algo, rollout, learn_key)
        return (algo, env_state, ts.obs), None

    key = jax.random.PRNGKey(seed)
    algo = tabular.init(key, config, env.spec, steps)
    env_state, ts = env.reset(key)
    run = jax.jit(lambda c, keys: jax.lax.scan(step, c, keys)[0])
    return run((algo, env_state, ts.obs), jax.random.split(key, steps))[0]


def test_the_dyna_maze_is_the_books() -> None:
    maze = grids.dyna_maze()
    assert maze.num_states == 6 * 9 - 7 and maze.gamma == 0.95
    v = np.asarray(dp.value_iteration(maze, tol=1e-10).values)
    start = int(np.argmax(np.asarray(maze.initial_distribution)))
    # the shortest path takes 14 moves: +1 on the 14th, discounted 13 times
    assert v[start] == pytest.approx(0.95**13, rel=1e-6)
    # a uniform random walk (Q_0 = 0 with random tie-breaks) takes 869 steps on average
    p = np.asarray(maze.transitions).mean(axis=1)
    inner = np.flatnonzero(~np.asarray(maze.terminal))
    hitting = np.linalg.solve(np.eye(inner.size) - p[np.ix_(inner, inner)], np.ones(inner.size))
    assert hitting[np.searchsorted(inner, start)] == pytest.approx(868.73, abs=0.01)


def test_dyna_q_with_a_learned_perfect_model_reaches_value_iterations_fixed_point() -> None:
    # a deterministic maze: once every (s, a) is tried the model is exact, and planning updates
    # drive Q to the Bellman optimality fixed point of the true MDP
    config = tabular.TabularConfig(
        method="dyna-q", alpha=0.5, gamma=0.95, epsilon=1.0, planning_steps=50
    )
    state = dyna_run(config, 4000)
    maze = grids.dyna_maze()
    q_star = np.asarray(dp.q_value_iteration(maze, tol=1e-10).q_values)
    inner = ~np.asarray(maze.terminal)
    assert np.asarray(state.model.tried)[inner].all()
    np.testing.assert_allclose(np.asarray(state.q)[inner], q_star[inner], atol=1e-4)


def test_dyna_q_without_planning_is_q_learning_and_planning_speeds_it_up() -> None:
    plain = tabular.TabularConfig(method="q-learning", alpha=0.1, gamma=0.95)
    dyna0 = dataclasses.replace(plain, method="dyna-q")
    same = [np.asarray(dyna_run(c, 6000).q) for c in (plain, dyna0)]
    np.testing.assert_array_equal(same[0], same[1])
    # after 6,000 steps (seed 0 first reaches the goal after 2,000), 50 planning steps per step
    # have spread the goal's value back to the start; Q-learning alone has not
    maze = grids.dyna_maze()
    start = int(np.argmax(np.asarray(maze.initial_distribution)))
    planned = np.asarray(dyna_run(dataclasses.replace(dyna0, planning_steps=50), 6000).q)
    assert planned[start].max() > 0.5 * 0.95**13 and same[0][start].max() < 0.1 * 0.95**13


def test_dyna_q_plus_plans_untried_actions_with_a_bonus() -> None:
    config = tabular.TabularConfig(
        method="dyna-q", alpha=1.0, gamma=0.9, planning_steps=1, kappa=0.5
    )
    state = tabular.init(jax.random.PRNGKey(0), config, SPEC, 10)
    # one real step: (0, 0) -> 1 with reward 0, at env step 1; planning then draws state 0 and
    # either action; untried action 1 is modelled as a self-loop with reward 0
    model = state.model
    q, _ = tabular.plan(
        config,
        jnp.zeros((2, 2)),
        model.replace(
            next_state=model.next_state.at[0, 0].set(1),
            tried=model.tried.at[0, 0].set(True),
            last_tried=model.last_tried.at[0, 0].set(1),
        ),
        jnp.asarray(5),
        jax.random.PRNGKey(3),
    )
    # planned reward 0 + kappa sqrt(tau): tau = 5 - 1 for the tried action, 5 - 0 for the other
    updated = np.flatnonzero(np.asarray(q[0]))
    assert updated.size == 1
    a = int(updated[0])
    assert float(q[0, a]) == pytest.approx(0.5 * np.sqrt(4.0 if a == 0 else 5.0))


def test_planning_settings_belong_to_dyna_q() -> None:
    with pytest.raises(ConfigError, match="planning_steps and kappa are Dyna-Q's settings"):
        tabular.TabularConfig(method="q-learning", planning_steps=5).validate()
    assert bellman.algos.get("dyna-q").make_config().planning_steps == 5
