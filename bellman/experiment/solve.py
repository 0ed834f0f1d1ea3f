"""`bellman solve`: exact planning on a finite environment, shown the way the lectures show it.

    bellman solve Maze-v0 --method value-iteration --show 1,2,3,10
    bellman solve GridWorld-v0 --method policy-evaluation --json
    bellman solve FrozenLake-v1 --method policy-iteration --plot

An env id names a finite MDP: one of bellman's (`Maze-v0`, `GridWorld-v0`, ...), a gymnasium
toy-text env, or any gymnasium env (`module:Class` included) that publishes its transition table
`P[s][a]`. Values are printed as the grid for grid worlds, V_k for each iteration asked for, and the
greedy policy as arrows; `--json` prints one object instead; `--plot` writes a heat map of V with
the policy (PNG) and, for grid worlds, an animation of V_0, V_1, ... (GIF).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from bellman import config as cfg
from bellman import mdp as mdp_lib
from bellman.algos import dp
from bellman.envs import finite, registry
from bellman.envs.gymnasium_env import make_single
from bellman.errors import ConfigError, EnvError, MDPError
from bellman.experiment import value_plots
from bellman.mdp import FiniteMDP

TABLE_ROWS = 40
"""States printed for an MDP without a grid (the JSON has them all)."""


def finite_mdp(env_id: str) -> FiniteMDP:
    """The FiniteMDP behind `env_id`, or EnvError/UnknownNameError with one sentence."""
    name = registry.jax_id(env_id)
    if name in finite.MDPS:
        return finite.MDPS[name]()
    if name in finite.TOY_TEXT:
        return finite.toy_text_mdp(name)
    if name in registry.JAX_ENVS and not (name in gym.registry or ":" in name):
        raise EnvError(f"'{env_id}' is not a finite MDP: solve needs its transition table")
    factory = registry.gymnasium_factory(env_id)  # unknown ids: the closest names
    try:
        env = make_single(factory)
    except Exception as exc:  # the env's own failure, in one sentence
        raise EnvError(f"could not create '{env_id}': {exc}") from None
    try:
        return mdp_lib.from_gymnasium(env)
    except MDPError:
        raise EnvError(
            f"'{env_id}' is not a finite MDP that bellman can read: solve needs an env whose "
            "unwrapped form has a transition table P[s][a] = [(probability, next_state, reward, "
            "terminated), ...], as gymnasium's toy-text envs do"
        ) from None
    finally:
        env.close()


@dataclass
class Solved:
    """An MDP, as solved (in the convention asked for), and the solution."""

    env_id: str
    mdp: FiniteMDP
    solution: dp.Solution

    @property
    def skip(self) -> np.ndarray:
        """States whose action does not matter (terminal or absorbing), shown without one."""
        return mdp_lib.absorbing(self.mdp)

    def greedy_policies(self) -> np.ndarray:
        """`[K + 1, S]` the greedy policy of each V_k in the history."""
        history = jax.numpy.asarray(self.solution.history)
        policies = jax.vmap(lambda v: dp.greedy_policy(self.mdp, v))(history)
        return np.asarray(policies)


def solve(
    env_id: str,
    method: str,
    *,
    iterations: int | None = None,
    tol: float = dp.DEFAULT_TOL,
    in_place: bool = False,
    gamma: float | None = None,
    objective: str | None = None,
) -> Solved:
    """Solve the finite env `env_id` with `method` (one of `dp.METHODS`).

    Args:
        gamma: the discount (default: the env's own).
        objective: "reward" or "cost" (default: the env's own convention; the other one solves the
            same problem with rewards as negated costs, and reports values in that convention).
    """
    dp.check_arguments(method, iterations, tol, in_place)
    if not isinstance(env_id, str):
        raise ConfigError(f"env must be an env id (a str), not {env_id!r}")
    if gamma is not None:
        gamma = cfg.check_number("gamma", gamma)
    if objective is not None and not isinstance(objective, str):
        raise ConfigError(f"objective must be 'reward', 'cost' or None, not {objective!r}")
    mdp = finite_mdp(env_id)
    if objective is not None:
        mdp = mdp_lib.with_objective(mdp, objective)
    if gamma is not None:
        mdp = mdp_lib.with_gamma(mdp, gamma)
    solution = dp.solve(mdp, method, iterations=iterations, tol=tol, in_place=in_place)
    return Solved(env_id, mdp, solution)


# ----- text -----


def _cell_texts(solved: Solved, texts: Sequence[str]) -> str:
    """Per-state strings laid out on the grid, walls as '#', right-aligned columns."""
    layout = solved.mdp.layout
    assert layout is not None
    grid = layout.to_grid(np.asarray(texts, object), fill="#")
    width = max(len(str(t)) for t in grid.ravel())
    return "\n".join(" ".join(f"{t:>{width}}" for t in row) for row in grid)


def values_text(solved: Solved, values: np.ndarray) -> str:
    """V as the grid (grid worlds) or one line per state."""
    if solved.mdp.layout is not None:
        return _cell_texts(solved, [f"{v:.3f}" for v in values])
    rows = [f"  state {s:>4}: {v:10.4f}" for s, v in enumerate(values[:TABLE_ROWS])]
    if len(values) > TABLE_ROWS:
        rows.append(f"  ... {len(values) - TABLE_ROWS} more states (--json prints them all)")
    return "\n".join(rows)


def policy_text(solved: Solved) -> str:
    """The greedy policy: arrows on the grid (a terminal or absorbing cell shows its mark, or
    '.'), else one action per state."""
    mdp, policy, skip = solved.mdp, solved.solution.policy, solved.skip
    if mdp.layout is not None:
        layout = mdp.layout
        texts = [
            (layout.mark(layout.cells[s]) or ".") if skip[s] else mdp.action_label(int(policy[s]))
            for s in range(mdp.num_states)
        ]
        return _cell_texts(solved, texts)
    rows = [
        f"  state {s:>4}: {'-' if skip[s] else mdp.action_label(int(a))}"
        for s, a in enumerate(policy[:TABLE_ROWS])
    ]
    if len(policy) > TABLE_ROWS:
        rows.append(f"  ... {len(policy) - TABLE_ROWS} more states (--json prints them all)")
    return "\n".join(rows)


def describe(solved: Solved) -> str:
    sol, mdp = solved.solution, solved.mdp
    convention = "costs, minimised" if mdp.minimize else "rewards, maximised"
    unit = "improvement steps" if sol.method == "policy-iteration" else "sweeps"
    if sol.method == "exact-evaluation":
        done = "one linear solve"
    else:
        state = "converged" if sol.converged else "not converged"
        done = f"{sol.iterations} {unit}, {state}"
    return (
        f"{solved.env_id}: {sol.method}, {convention}, gamma {float(mdp.gamma):g}; {done} "
        f"({sol.seconds:.2f} s)"
    )


def report(solved: Solved, show: Sequence[int] = ()) -> str:
    """The text `bellman solve` prints: V_k for each k in `show`, the final V, the policy."""
    sol = solved.solution
    parts = [describe(solved)]
    for k in show:
        last = min(k, sol.iterations)
        note = "" if k <= sol.iterations else f" (the loop stopped at k = {sol.iterations})"
        parts.append(f"\nV_{k}{note}:\n{values_text(solved, sol.history[last])}")
    parts.append(f"\nV (final):\n{values_text(solved, sol.values)}")
    what = "the evaluated policy's greedy improvement" if "evaluation" in sol.method else "policy"
    parts.append(f"\ngreedy {what}:\n{policy_text(solved)}")
    return "\n".join(parts)


# ----- JSON -----


def _shaped(solved: Solved, per_state: np.ndarray) -> Any:
    """`[..., S]` as nested lists in the grid's shape (None on walls), or as is without a grid."""
    layout = solved.mdp.layout
    if layout is None:
        return np.asarray(per_state).tolist()
    grid = layout.to_grid(np.asarray(per_state, np.float64))
    return np.where(np.isnan(grid), None, grid).tolist()  # type: ignore[call-overload]


def to_json(solved: Solved) -> dict[str, Any]:
    """One JSON object: values and history (history[0] = V_0) in the grid's shape for grid
    worlds, the greedy policy (action indices, None on walls) and its arrows, iterations..."""
    sol, mdp = solved.solution, solved.mdp
    policy = _shaped(solved, sol.policy.astype(np.float64))
    if mdp.layout is not None:
        policy = [[None if a is None else int(a) for a in row] for row in policy]
    return {
        "env": solved.env_id,
        "method": sol.method,
        "objective": mdp.objective,
        "gamma": float(f"{float(mdp.gamma):.7g}"),  # as given, not its float32 rounding
        "iterations": sol.iterations,
        "converged": sol.converged,
        "values": _shaped(solved, sol.values),
        "history": [_shaped(solved, v) for v in sol.history],
        "policy": policy,
        "policy_arrows": _shaped_labels(solved),
        "actions": [
            mdp.action_names[a] if a < len(mdp.action_names) else str(a)
            for a in range(mdp.num_actions)
        ],
        "q_values": np.asarray(sol.q_values).tolist(),
        "grid_shape": list(mdp.layout.shape) if mdp.layout is not None else None,
        "seconds": sol.seconds,
    }


def _shaped_labels(solved: Solved) -> Any:
    mdp, skip = solved.mdp, solved.skip
    labels = [
        None if skip[s] else mdp.action_label(int(a)) for s, a in enumerate(solved.solution.policy)
    ]
    if mdp.layout is None:
        return labels
    grid = mdp.layout.to_grid(np.asarray(labels, object), fill=None)
    return grid.tolist()


# ----- pictures -----


def plot(solved: Solved, out: Path) -> list[Path]:
    """Write `<env>-<method>.png` (V with the greedy policy) and, for grid worlds,
    `<env>-<method>.gif` (V_0, V_1, ... with each one's greedy policy) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    sol, mdp = solved.solution, solved.mdp
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in solved.env_id)
    stem = f"{stem}-{sol.method}"
    labels = [mdp.action_label(a) for a in range(mdp.num_actions)]
    title = f"{solved.env_id}, {sol.method}"
    png = out / f"{stem}.png"
    if mdp.layout is None:
        value_plots.value_curves(
            png, sol.values, sol.policy, labels, title, mdp.minimize, solved.skip
        )
        return [png]
    value_plots.value_map(
        png, mdp.layout, sol.values, sol.policy, labels, title, mdp.minimize, solved.skip
    )
    gif = out / f"{stem}.gif"
    value_plots.value_animation(
        gif,
        mdp.layout,
        sol.history,
        solved.greedy_policies(),
        labels,
        title,
        mdp.minimize,
        solved.skip,
    )
    return [png, gif]
