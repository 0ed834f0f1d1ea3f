"""Finite Markov decision processes (S, A, P, R, gamma), rewards maximised or costs minimised.

A `FiniteMDP` holds P[s, a, s'] = Pr(s' | s, a) and R[s, a, s'], the reward (or the cost) of that
transition, for states 0..S-1 and actions 0..A-1. Terminal states have value 0 by definition: no
reward or cost is counted once one is reached. With `objective="reward"` the values are
V(s) = max_a sum_s' P[s, a, s'] (R[s, a, s'] + gamma V(s')); with `objective="cost"` (the robotics
lecture's convention) R holds costs and max becomes min. Values are always reported in the MDP's own
convention.

An MDP is a pytree whose array fields (P, R, the terminal mask, gamma, V_0, the start distribution)
can be stacked and vmapped: many MDPs, or one MDP under many discounts, solved in one program. Its
description (objective, names, grid layout) is static.

Builders: `make` (from arrays), `from_transitions` (from a function s, a -> outcomes) and
`from_gymnasium` (from a toy-text env's `P` table: FrozenLake, CliffWalking, Taxi). All of them call
`validate`, which turns a malformed MDP into one clear sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.errors import MDPError

Objective = Literal["reward", "cost"]
OBJECTIVES: tuple[str, ...] = ("reward", "cost")

GRID_ACTIONS: tuple[str, ...] = ("up", "right", "down", "left")
"""The action order of bellman's grid worlds (and of gymnasium's CliffWalking)."""
GRID_MOVES: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""(row, column) change of each grid action."""
ARROWS = {"up": "↑", "right": "→", "down": "↓", "left": "←"}


@dataclass(frozen=True)
class GridLayout:
    """Where each state sits on a rows x columns grid, to print and plot values and policies."""

    shape: tuple[int, int]
    cells: tuple[tuple[int, int], ...]
    """(row, column) of each state, in state order."""
    blocked: tuple[tuple[int, int], ...] = ()
    """Cells that are walls (no state)."""
    marks: tuple[tuple[tuple[int, int], str], ...] = ()
    """Letters shown on special cells, e.g. ((0, 3), "G") for a goal."""
    axes: tuple[str, str] | None = None
    """What rows and columns stand for, when not places (e.g. the bins of two features)."""

    @classmethod
    def full(cls, rows: int, cols: int, **kwargs: Any) -> GridLayout:
        """Every cell a state, numbered row by row (s = row * cols + col)."""
        cells = tuple((r, c) for r in range(rows) for c in range(cols))
        return cls((rows, cols), cells, **kwargs)

    def to_grid(self, values: Any, fill: Any = np.nan) -> np.ndarray:
        """`[..., S]` per-state values -> `[..., rows, cols]`, `fill` where no state sits."""
        values = np.asarray(values)
        dtype = np.result_type(values.dtype, np.asarray(fill).dtype)
        grid = np.full((*values.shape[:-1], *self.shape), fill, dtype)
        rows, cols = np.array(self.cells).T
        grid[..., rows, cols] = values
        return grid

    def mark(self, cell: tuple[int, int]) -> str:
        return dict(self.marks).get(cell, "")


class FiniteMDP(struct.PyTreeNode):
    """A finite MDP as arrays. Shapes: S states, A actions."""

    transitions: jax.Array
    """P[s, a, s'] `[S, A, S]`: the probability of s' after action a in s; rows sum to 1."""
    rewards: jax.Array
    """R[s, a, s'] `[S, A, S]`: the reward (costs if `objective == "cost"`) of that transition."""
    terminal: jax.Array
    """`[S]` bool: terminal states, whose value is 0 (nothing is collected after reaching one)."""
    gamma: jax.Array
    """`[]` discount factor in [0, 1]."""
    initial_values: jax.Array
    """`[S]` V_0, where the iterative methods start (0 unless the MDP says otherwise)."""
    initial_distribution: jax.Array
    """`[S]` distribution of the first state of an episode (for running the MDP as an env)."""
    objective: str = struct.field(pytree_node=False, default="reward")
    """"reward": values are maximised; "cost": R holds costs and values are minimised."""
    name: str = struct.field(pytree_node=False, default="mdp")
    action_names: tuple[str, ...] = struct.field(pytree_node=False, default=())
    layout: GridLayout | None = struct.field(pytree_node=False, default=None)
    """For grid worlds: where each state sits, to show values as a grid."""
    max_episode_steps: int | None = struct.field(pytree_node=False, default=None)
    """Time limit (truncation) when the MDP is run as an environment."""

    @property
    def num_states(self) -> int:
        return int(self.transitions.shape[-3])

    @property
    def num_actions(self) -> int:
        return int(self.transitions.shape[-2])

    @property
    def minimize(self) -> bool:
        return self.objective == "cost"

    def expected_rewards(self) -> jax.Array:
        """r(s, a) = sum_s' P[s, a, s'] R[s, a, s'], `[S, A]` (expected costs for a cost MDP)."""
        return jnp.sum(self.transitions * self.rewards, axis=-1)

    def env_rewards(self) -> jax.Array:
        """R[s, a, s'] as an environment's reward: minus the cost for a cost MDP."""
        return -self.rewards if self.minimize else self.rewards

    def action_label(self, a: int) -> str:
        name = self.action_names[a] if a < len(self.action_names) else str(a)
        return ARROWS.get(name, name)

    def state_name(self, s: int) -> str:
        if self.layout is not None:
            r, c = self.layout.cells[s]
            return f"state {s} (row {r}, column {c})"
        return f"state {s}"


def best(q: jax.Array, minimize: bool) -> jax.Array:
    """max_a Q(s, a), or min_a for costs, over the last axis."""
    return jnp.min(q, axis=-1) if minimize else jnp.max(q, axis=-1)


def best_action(q: jax.Array, minimize: bool) -> jax.Array:
    """argmax_a Q(s, a), or argmin_a for costs (ties: the lowest action index)."""
    return jnp.argmin(q, axis=-1) if minimize else jnp.argmax(q, axis=-1)


# ----- building -----


def make(
    transitions: Any,
    rewards: Any,
    gamma: float,
    *,
    terminal: Any = None,
    objective: str = "reward",
    initial_values: Any = None,
    initial_distribution: Any = None,
    name: str = "mdp",
    action_names: Sequence[str] = (),
    layout: GridLayout | None = None,
    max_episode_steps: int | None = None,
) -> FiniteMDP:
    """A validated FiniteMDP from arrays.

    Args:
        transitions: P[s, a, s'], `[S, A, S]`.
        rewards: R[s, a, s'] `[S, A, S]`, or R[s, a] `[S, A]` (the same for every s'), or R[s]
            `[S]` (a reward or cost for being in s, as in the maze).
        gamma: discount factor in [0, 1]; 1 only if every state can reach a terminal state.
        terminal: `[S]` bool mask of terminal states (default: none).
        objective: "reward" (maximise) or "cost" (minimise).
        initial_values: V_0 `[S]` (default zeros).
        initial_distribution: start distribution `[S]` (default: uniform over non-terminal states).
    """
    if objective not in OBJECTIVES:
        raise MDPError(f"objective must be 'reward' or 'cost', not '{objective}'")
    p = np.asarray(transitions, np.float64)
    if p.ndim != 3 or p.shape[0] != p.shape[2]:
        raise MDPError(f"transitions must have shape [S, A, S], not {list(p.shape)}")
    num_states, num_actions, _ = p.shape
    r = np.asarray(rewards, np.float64)
    if r.shape == (num_states,):
        r = r[:, None, None]
    elif r.shape == (num_states, num_actions):
        r = r[:, :, None]
    elif r.shape != p.shape:
        raise MDPError(
            f"rewards must have shape [S, A, S], [S, A] or [S] = {[num_states, num_actions]}..., "
            f"not {list(r.shape)}"
        )
    r = np.broadcast_to(r, p.shape)
    done = np.zeros(num_states, bool) if terminal is None else np.asarray(terminal, bool)
    v0 = np.zeros(num_states) if initial_values is None else np.asarray(initial_values, np.float64)
    if initial_distribution is None:
        start = (~done).astype(np.float64)
        start = start / start.sum() if start.sum() > 0 else np.full(num_states, 1 / num_states)
    else:
        start = np.asarray(initial_distribution, np.float64)
    vectors = {"terminal": done, "initial_values": v0, "initial_distribution": start}
    for label, array in vectors.items():
        if array.shape != (num_states,):
            raise MDPError(f"{label} must have shape [S] = [{num_states}], not {list(array.shape)}")
    mdp = FiniteMDP(
        transitions=jnp.asarray(p, jnp.float32),
        rewards=jnp.asarray(r, jnp.float32),
        terminal=jnp.asarray(done),
        gamma=jnp.asarray(gamma, jnp.float32),
        initial_values=jnp.asarray(v0, jnp.float32),
        initial_distribution=jnp.asarray(start, jnp.float32),
        objective=objective,
        name=name,
        action_names=tuple(action_names),
        layout=layout,
        max_episode_steps=max_episode_steps,
    )
    _validate(p, r, start, mdp)
    return mdp


def from_transitions(
    num_states: int,
    num_actions: int,
    outcomes: Callable[[int, int], Iterable[tuple[float, int, float]]],
    gamma: float,
    **kwargs: Any,
) -> FiniteMDP:
    """A FiniteMDP from `outcomes(s, a) -> [(probability, next_state, reward), ...]`.

    Outcomes with the same next state add up (their rewards are probability-weighted). Keyword
    arguments are those of `make`.
    """
    p = np.zeros((num_states, num_actions, num_states))
    weighted = np.zeros_like(p)
    for s in range(num_states):
        for a in range(num_actions):
            for prob, s_next, reward in outcomes(s, a):
                p[s, a, s_next] += prob
                weighted[s, a, s_next] += prob * reward
    r = np.divide(weighted, p, out=np.zeros_like(p), where=p > 0)
    return make(p, r, gamma, **kwargs)


def from_gymnasium(env: Any, gamma: float = 0.99, **kwargs: Any) -> FiniteMDP:
    """The FiniteMDP of a gymnasium toy-text env (FrozenLake, CliffWalking, Taxi, or your own env
    with the same `P[s][a] = [(probability, next_state, reward, terminated), ...]` table).

    A state that transitions end in with `terminated=True` is terminal. The grid layout is read
    from the env's map (`desc`) or `shape` when it has one; the start distribution from
    `initial_state_distrib` (or `start_state_index`).
    """
    base = getattr(env, "unwrapped", env)
    table = getattr(base, "P", None)
    if not isinstance(table, dict) or not table:
        raise MDPError(
            f"{type(base).__name__} has no transition table P[s][a]: it is not a finite MDP "
            "that bellman can read"
        )
    num_states = len(table)
    num_actions = len(table[0])
    done = np.zeros(num_states, bool)
    for s in range(num_states):
        for a in range(num_actions):
            for _, s_next, _, terminated in table[s][a]:
                done[int(s_next)] |= bool(terminated)
    outcomes = lambda s, a: [(prob, int(s2), float(r)) for prob, s2, r, _ in table[s][a]]
    start = getattr(base, "initial_state_distrib", None)
    if start is None and hasattr(base, "start_state_index"):
        start = np.eye(num_states)[int(base.start_state_index)]
    kwargs.setdefault("initial_distribution", start)
    kwargs.setdefault("terminal", done)
    kwargs.setdefault("layout", _gymnasium_layout(base, num_states, done))
    spec = getattr(env, "spec", None)
    kwargs.setdefault("name", spec.id if spec is not None else type(base).__name__)
    kwargs.setdefault("max_episode_steps", spec.max_episode_steps if spec is not None else None)
    if num_actions == 4 and kwargs["layout"] is not None and hasattr(base, "desc"):
        kwargs.setdefault("action_names", ("left", "down", "right", "up"))  # FrozenLake's order
    elif num_actions == 4 and kwargs["layout"] is not None:
        kwargs.setdefault("action_names", GRID_ACTIONS)  # CliffWalking's order
    return from_transitions(num_states, num_actions, outcomes, gamma, **kwargs)


def _gymnasium_layout(base: Any, num_states: int, done: np.ndarray) -> GridLayout | None:
    desc = getattr(base, "desc", None)
    if desc is not None:
        desc = np.asarray(desc)
        rows, cols = desc.shape
        if rows * cols == num_states:
            marks = tuple(
                ((r, c), desc[r, c].decode() if isinstance(desc[r, c], bytes) else str(desc[r, c]))
                for r in range(rows)
                for c in range(cols)
                if desc[r, c] not in (b"F", "F")
            )
            return GridLayout.full(rows, cols, marks=marks)
    shape = getattr(base, "shape", None)
    if shape is not None and len(shape) == 2 and shape[0] * shape[1] == num_states:
        return GridLayout.full(int(shape[0]), int(shape[1]))
    return None


# ----- checking -----


def _validate(p: np.ndarray, r: np.ndarray, start: np.ndarray, mdp: FiniteMDP) -> None:
    """Raise MDPError with one sentence for the first thing wrong with the MDP."""
    where = f"MDP '{mdp.name}'"
    if not (np.isfinite(p).all() and np.isfinite(r).all()):
        raise MDPError(f"{where} has NaN or infinite transition probabilities or rewards")
    if (p < 0).any():
        s, a, s2 = np.argwhere(p < 0)[0]
        raise MDPError(f"{where} has a negative probability P[{s}, {a}, {s2}] = {p[s, a, s2]:g}")
    sums = p.sum(axis=-1)
    bad = np.argwhere(np.abs(sums - 1.0) > 1e-5)
    if len(bad):
        s, a = bad[0]
        raise MDPError(
            f"{where} is not stochastic: the probabilities of action {a} in {mdp.state_name(s)} "
            f"sum to {sums[s, a]:.6g}, not 1"
        )
    if abs(start.sum() - 1.0) > 1e-5 or (start < 0).any():
        raise MDPError(f"{where}'s initial_distribution is not a probability distribution")
    check_discount(mdp)


def check_discount(mdp: FiniteMDP) -> None:
    """Raise MDPError unless gamma lies in [0, 1], and, for gamma = 1, unless a terminal state can
    be reached from every state (otherwise the optimal values are infinite)."""
    gamma = float(mdp.gamma)
    if not 0.0 <= gamma <= 1.0:
        raise MDPError(f"gamma must lie in [0, 1], not {gamma:g}")
    if gamma == 1.0:
        stuck = np.flatnonzero(~reaches_terminal(mdp.transitions, mdp.terminal))
        if len(stuck):
            raise MDPError(
                f"gamma = 1 needs episodes that end, but no terminal state can be reached from "
                f"{mdp.state_name(int(stuck[0]))} of MDP '{mdp.name}': use a gamma below 1"
            )


def reaches_terminal(transitions: Any, terminal: Any, policy: Any = None) -> np.ndarray:
    """`[S]` bool: from each state, some terminal state is reached with positive probability.

    With `policy` (`[S, A]` probabilities), under that policy; without, under some choice of
    actions. In a finite MDP, a policy that reaches a terminal state from everywhere ends every
    episode with probability 1, which is what gamma = 1 needs for finite values.
    """
    p = np.asarray(transitions)
    if policy is None:
        step = p.max(axis=1) > 0  # s -> s' under some action
    else:
        step = np.einsum("sa,sat->st", np.asarray(policy), p) > 0
    reached = np.asarray(terminal, bool).copy()
    while True:
        grown = reached | (step & reached[None, :]).any(axis=1)
        if (grown == reached).all():
            return reached
        reached = grown


def check_policy_terminates(mdp: FiniteMDP, policy: Any) -> None:
    """For gamma = 1, raise MDPError unless `policy` ends episodes from every state."""
    if float(mdp.gamma) < 1.0:
        return
    stuck = np.flatnonzero(~reaches_terminal(mdp.transitions, mdp.terminal, policy))
    if len(stuck):
        raise MDPError(
            f"with gamma = 1 the policy's values are infinite: it never reaches a terminal state "
            f"from {mdp.state_name(int(stuck[0]))} of MDP '{mdp.name}'"
        )


def with_objective(mdp: FiniteMDP, objective: str) -> FiniteMDP:
    """The same MDP in the other convention when `objective` differs from its own: rewards become
    costs (negated) or costs rewards, V_0 with them; the values come out negated, the policies
    are the same."""
    if objective not in OBJECTIVES:
        raise MDPError(f"objective must be 'reward' or 'cost', not '{objective}'")
    if objective == mdp.objective:
        return mdp
    return mdp.replace(
        rewards=-mdp.rewards, initial_values=-mdp.initial_values, objective=objective
    )


def with_gamma(mdp: FiniteMDP, gamma: float) -> FiniteMDP:
    """The MDP under another discount, checked as `make` checks it."""
    if not 0.0 <= gamma <= 1.0:  # checked before float32 rounds it
        raise MDPError(f"gamma must lie in [0, 1], not {gamma:g}")
    changed = mdp.replace(gamma=jnp.asarray(gamma, jnp.float32))
    check_discount(changed)
    return changed


def reachable(mdp: FiniteMDP) -> np.ndarray:
    """`[S]` bool: states an episode can visit, from a start state, under some actions."""
    step = np.asarray(mdp.transitions).max(axis=1) > 0  # s -> s' under some action
    seen = np.asarray(mdp.initial_distribution) > 0
    while True:
        grown = seen | (step & seen[:, None]).any(axis=0)
        if (grown == seen).all():
            return seen
        seen = grown


def absorbing(mdp: FiniteMDP) -> np.ndarray:
    """`[S]` bool: states that every action leaves unchanged (terminal or absorbing), where a
    policy's choice does not matter."""
    p = np.asarray(mdp.transitions)
    stay = np.diagonal(p, axis1=0, axis2=2).T  # [S, A]: P[s, a, s]
    return np.asarray(mdp.terminal) | (stay >= 1.0 - 1e-6).all(axis=1)


def uniform_policy(mdp: FiniteMDP) -> jax.Array:
    """The equiprobable random policy pi(a | s) = 1 / A, `[S, A]`."""
    return jnp.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions, jnp.float32)
