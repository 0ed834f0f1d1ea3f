"""Dynamic programming on finite MDPs (Bellman, 1957; Sutton & Barto, 2018, chapter 4).

Policy evaluation (iterative sweeps, synchronous or in place, and exact by a linear solve), value
iteration, Q-value iteration and policy iteration, as pure JAX functions of a `FiniteMDP`. Each one
compiles with `jax.jit` (method flags and loop bounds are static) and maps with `jax.vmap` over
stacked MDPs or over the discount: `jax.vmap(lambda g: value_iteration(mdp.replace(gamma=g)))(gs)`.
`solve` is the host-side entry point: it checks its input, runs one method, returns numpy arrays.

Conventions (docs/algorithms/dp.md lists them all):
- values are in the MDP's own convention: rewards maximised, or costs minimised (max becomes min);
- terminal states are worth 0: V(terminal) = 0 in every backup, and Q(terminal, .) = 0;
- greedy policies break ties towards the lowest action index;
- a loop stops when a sweep changes no value by more than max(tol, float rounding), the book's
  "Delta < theta"; tol = 0 runs exactly `max_iterations` sweeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman import config as cfg
from bellman import mdp as mdp_lib
from bellman.errors import ConfigError, closest
from bellman.mdp import FiniteMDP, best, best_action

METHODS = (
    "value-iteration",
    "q-value-iteration",
    "policy-iteration",
    "policy-evaluation",
    "exact-evaluation",
)
"""The methods `solve` runs."""
DEFAULT_TOL = 1e-6
MAX_SWEEPS = 10_000
"""`solve`'s cap on sweeps (value iteration, policy evaluation) when no `iterations` is given."""
MAX_IMPROVEMENTS = 1_000
"""`solve`'s cap on policy iteration's improvement steps."""
MAX_ITERATIONS = 1_000_000
"""The most iterations `solve` runs when asked for an exact number: it keeps V_k of every
iteration (`history`, for `--show` and the animation), and a run that long has long converged."""
ROUNDING = 8.0
"""A change below ROUNDING float epsilons of max |V| counts as converged: float32 sweeps can
oscillate by an ulp forever, so a tol below the rounding of the values would never stop."""
IMPROVEMENT_TOL = 1e-5
"""Policy iteration changes an action only if another is better by more than this (relative to
max |Q|): without it, rounding between tied actions can flip the policy back and forth."""


class PlanningResult(struct.PyTreeNode):
    """What every planning function returns. Values are costs for a cost MDP."""

    values: jax.Array
    """`[S]` the final V."""
    q_values: jax.Array
    """`[S, A]` Q(s, a) = sum_s' P (R + gamma V(s')) of the final V (0 for terminal states)."""
    policy: jax.Array
    """`[S]` int32, greedy in the final V: argmax_a Q (argmin for costs), ties to the lowest a."""
    iterations: jax.Array
    """`[]` int32: sweeps (evaluation, value iteration) or improvement steps (policy iteration)."""
    history: jax.Array
    """`[max_iterations + 1, S]`: history[0] = V_0, history[k] = V after k sweeps (policy
    iteration: the value of the k-th policy evaluated); rows after `iterations` repeat the last."""
    converged: jax.Array
    """`[]` bool: the last sweep changed no value by more than the tolerance (policy iteration:
    the policy is stable)."""


# ----- the Bellman backups -----


def _zero_terminal(mdp: FiniteMDP, v: jax.Array) -> jax.Array:
    return jnp.where(mdp.terminal, 0.0, v).astype(mdp.transitions.dtype)


def q_from_values(mdp: FiniteMDP, v: jax.Array) -> jax.Array:
    """Q(s, a) = sum_s' P(s'|s, a) [R(s, a, s') + gamma V(s')] (S&B eq. 4.6), `[S]` -> `[S, A]`.

    V(terminal) is taken as 0, and terminal states' Q is 0.
    """
    q = mdp.expected_rewards() + mdp.gamma * mdp.transitions @ _zero_terminal(mdp, v)
    return jnp.where(mdp.terminal[:, None], 0.0, q)


def greedy_policy(mdp: FiniteMDP, v: jax.Array) -> jax.Array:
    """pi'(s) = argmax_a Q(s, a) (argmin for costs), ties to the lowest action, `[S]` int32."""
    return best_action(q_from_values(mdp, v), mdp.minimize).astype(jnp.int32)


def policy_probabilities(mdp: FiniteMDP, policy: jax.Array | None = None) -> jax.Array:
    """pi(a|s) `[S, A]` from a stochastic policy `[S, A]`, a deterministic one `[S]` (int
    actions, made one-hot) or None (the equiprobable random policy)."""
    num_states, num_actions = mdp.transitions.shape[-3], mdp.transitions.shape[-2]
    dtype = mdp.transitions.dtype
    if policy is None:
        return jnp.full((num_states, num_actions), 1.0 / num_actions, dtype)
    policy = jnp.asarray(policy)
    if policy.ndim == 1:
        return jax.nn.one_hot(policy, num_actions, dtype=dtype)
    return policy.astype(dtype)


def _policy_model(mdp: FiniteMDP, pi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """r_pi(s) = sum_a pi(a|s) r(s, a) `[S]` and P_pi(s'|s) = sum_a pi(a|s) P(s'|s, a) `[S, S]`."""
    r_pi = jnp.sum(pi * mdp.expected_rewards(), axis=-1)
    p_pi = jnp.einsum("sa,sat->st", pi, mdp.transitions)
    return r_pi, p_pi


def _evaluation_sweep(
    mdp: FiniteMDP, pi: jax.Array, in_place: bool
) -> Callable[[jax.Array], jax.Array]:
    """One sweep of eq. 4.5: v(s) <- sum_a pi(a|s) sum_s' p(s'|s, a) [r + gamma v(s')]."""
    r_pi, p_pi = _policy_model(mdp, pi)
    live = ~mdp.terminal

    def synchronous(v: jax.Array) -> jax.Array:  # two arrays: every state reads v_k
        return jnp.where(live, r_pi + mdp.gamma * p_pi @ v, 0.0)

    def in_place_sweep(v: jax.Array) -> jax.Array:  # one array, states in order: reads the newest
        def update(s: jax.Array, v: jax.Array) -> jax.Array:
            return v.at[s].set(jnp.where(live[s], r_pi[s] + mdp.gamma * p_pi[s] @ v, 0.0))

        return jax.lax.fori_loop(0, v.shape[0], update, v)

    return in_place_sweep if in_place else synchronous


def _threshold(tol: Any, x: jax.Array) -> jax.Array:
    rounding = ROUNDING * jnp.finfo(x.dtype).eps * jnp.maximum(1.0, jnp.max(jnp.abs(x)))
    return jnp.maximum(tol, rounding)


def _iterate(
    sweep: Callable[[jax.Array], jax.Array],
    x0: jax.Array,
    to_values: Callable[[jax.Array], jax.Array],
    tol: Any,
    max_iterations: int,
    record: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """x_{k+1} = sweep(x_k) until max |x_{k+1} - x_k| < max(tol, rounding) (if tol > 0) or
    `max_iterations` sweeps. Returns x, the history of to_values(x_k) (if `record`), the number
    of sweeps and whether the last one changed less than the threshold."""
    v0 = to_values(x0)
    shape = (max_iterations + 1, *v0.shape) if record else (1, *v0.shape)
    history = jnp.broadcast_to(v0, shape)

    def running(carry: tuple[jax.Array, jax.Array, jax.Array, jax.Array]) -> jax.Array:
        k, x, _, delta = carry
        return (k < max_iterations) & ~((tol > 0) & (delta < _threshold(tol, x)))

    def step(
        carry: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        k, x, history, _ = carry
        x_next = sweep(x)
        delta = jnp.max(jnp.abs(x_next - x))  # the book's Delta
        if record:
            history = history.at[k + 1].set(to_values(x_next))
        return k + 1, x_next, history, delta

    inf = jnp.asarray(jnp.inf, x0.dtype)
    k, x, history, delta = jax.lax.while_loop(running, step, (jnp.int32(0), x0, history, inf))
    if record:  # rows after the last sweep repeat its values
        after = jnp.arange(shape[0])[:, None] > k
        history = jnp.where(after, to_values(x), history)
    return x, history, k, delta < _threshold(tol, x)


def _result(
    mdp: FiniteMDP, v: jax.Array, history: jax.Array, k: jax.Array, converged: jax.Array
) -> PlanningResult:
    q = q_from_values(mdp, v)
    policy = best_action(q, mdp.minimize).astype(jnp.int32)
    return PlanningResult(v, q, policy, k, history, converged)


# ----- policy evaluation (S&B 4.1) -----


def policy_evaluation(
    mdp: FiniteMDP,
    policy: jax.Array | None = None,
    *,
    in_place: bool = False,
    tol: float = DEFAULT_TOL,
    max_iterations: int = 1000,
) -> PlanningResult:
    """Iterative policy evaluation: sweeps of v_{k+1}(s) = sum_a pi(a|s) sum_s' p (r + gamma
    v_k(s')) (eq. 4.5) from V_0 = `mdp.initial_values` (terminal states 0).

    Args:
        policy: pi(a|s) `[S, A]`, or deterministic actions `[S]` int; default equiprobable.
        in_place: Gauss-Seidel sweeps in state order (each backup sees the states already
            updated in this sweep) instead of synchronous two-array sweeps (Figure 4.1).
        tol: stop once a sweep changes no value by more than tol; 0 runs every sweep.
        max_iterations: the most sweeps (static).

    Returns:
        v_pi with its history; `policy` and `q_values` are greedy in v_pi (one improvement step).
    """
    sweep = _evaluation_sweep(mdp, policy_probabilities(mdp, policy), in_place)
    v0 = _zero_terminal(mdp, mdp.initial_values)
    v, history, k, converged = _iterate(sweep, v0, lambda v: v, tol, max_iterations)
    return _result(mdp, v, history, k, converged)


def _solve_linear(a: jax.Array, b: jax.Array) -> jax.Array:
    """x with a x = b (`[n, n]`, `[n]`) by Gauss-Jordan elimination with partial pivoting, in
    plain XLA operations: LAPACK's solver can deadlock under vmap here (`nets.orthonormal_columns`).
    """
    rows = jnp.arange(b.shape[0])

    def eliminate(k: jax.Array, ab: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        a, b = ab
        pivot = jnp.argmax(jnp.where(rows >= k, jnp.abs(a[:, k]), -1.0))
        swap = rows.at[k].set(pivot).at[pivot].set(k)  # exchange rows k and pivot
        a, b = a[swap], b[swap]
        factor = (a[:, k] / a[k, k]).at[k].set(0.0)  # clear column k in every other row
        return a - factor[:, None] * a[k], b - factor * b[k]

    a, b = jax.lax.fori_loop(0, b.shape[0], eliminate, (a, b))
    return b / jnp.diagonal(a)


def evaluate_exact(mdp: FiniteMDP, policy: jax.Array | None = None) -> jax.Array:
    """v_pi `[S]` from the Bellman expectation equation as a linear system (eq. 4.4):
    (I - gamma P_pi) v = r_pi, with terminal states' rows replaced by v(s) = 0.

    The system is singular when gamma = 1 and the policy never reaches a terminal state from
    some state (values are infinite): `solve` checks that before calling this.
    """
    r_pi, p_pi = _policy_model(mdp, policy_probabilities(mdp, policy))
    eye = jnp.eye(r_pi.shape[0], dtype=p_pi.dtype)
    a = jnp.where(mdp.terminal[:, None], eye, eye - mdp.gamma * p_pi)
    b = jnp.where(mdp.terminal, 0.0, r_pi)
    return _solve_linear(a, b)


# ----- value iteration (S&B 4.4) -----


def value_iteration(
    mdp: FiniteMDP, *, tol: float = DEFAULT_TOL, max_iterations: int = 1000
) -> PlanningResult:
    """Value iteration: v_{k+1}(s) = max_a sum_s' p(s'|s, a) [r + gamma v_k(s')] (eq. 4.10; min_a
    for costs) from V_0 = `mdp.initial_values` (terminal states 0). For the maze, whose cost is
    paid in the cell left, that is V_{n+1}(s) = min_a [C(s) + gamma V_n(s')] from V_0 = C."""

    def backup(v: jax.Array) -> jax.Array:  # synchronous: every state reads v_k
        return best(q_from_values(mdp, v), mdp.minimize)

    v0 = _zero_terminal(mdp, mdp.initial_values)
    v, history, k, converged = _iterate(backup, v0, lambda v: v, tol, max_iterations)
    return _result(mdp, v, history, k, converged)


def q_value_iteration(
    mdp: FiniteMDP, *, tol: float = DEFAULT_TOL, max_iterations: int = 1000
) -> PlanningResult:
    """Value iteration on Q: Q_{k+1}(s, a) = sum_s' p(s'|s, a) [r + gamma max_a' Q_k(s', a')]
    (min for costs), from Q_0(s, a) = V_0(s). `history` holds V_k = max_a Q_k (the same numbers
    as `value_iteration`'s); the loop stops on the change of Q."""
    v0 = _zero_terminal(mdp, mdp.initial_values)
    q0 = jnp.broadcast_to(v0[:, None], mdp.transitions.shape[:2])
    values_of = lambda q: best(q, mdp.minimize)
    backup = lambda q: q_from_values(mdp, values_of(q))
    q, history, k, converged = _iterate(backup, q0, values_of, tol, max_iterations)
    v = values_of(q)
    policy = best_action(q, mdp.minimize).astype(jnp.int32)
    return PlanningResult(v, q, policy, k, history, converged)


# ----- policy iteration (S&B 4.3) -----


def policy_iteration(
    mdp: FiniteMDP,
    policy: jax.Array | None = None,
    *,
    evaluation: Literal["exact", "iterative"] = "exact",
    tol: float = DEFAULT_TOL,
    max_iterations: int = 100,
    evaluation_sweeps: int = MAX_SWEEPS,
) -> PlanningResult:
    """Policy iteration: evaluate pi_k, make pi_{k+1} greedy in v_{pi_k}, until pi is stable.

    Args:
        policy: the first policy pi_0, `[S, A]` or `[S]` int; default equiprobable (which ends
            episodes whenever some policy does, so that gamma = 1 values are finite).
        evaluation: "exact" (the linear solve) or "iterative" (synchronous sweeps to `tol`, at
            most `evaluation_sweeps`, each evaluation starting from the previous policy's values).
        max_iterations: the most improvement steps (static).

    Returns:
        `iterations` counts improvement steps, the last of which found the policy stable;
        `history[k]` is the value of the k-th policy evaluated (pi_{k-1}).
    """
    v0 = _zero_terminal(mdp, mdp.initial_values)
    history = jnp.broadcast_to(v0, (max_iterations + 1, *v0.shape))

    def evaluate(pi: jax.Array, v: jax.Array) -> jax.Array:
        if evaluation == "exact":
            return evaluate_exact(mdp, pi)
        sweep = _evaluation_sweep(mdp, pi, in_place=False)
        return _iterate(sweep, v, lambda v: v, tol, evaluation_sweeps, record=False)[0]

    Carry = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]

    def running(carry: Carry) -> jax.Array:
        k, _, _, _, stable = carry
        return (k < max_iterations) & ~stable

    def improve(carry: Carry) -> Carry:
        k, pi, v, history, _ = carry
        v = evaluate(pi, v)  # 2. policy evaluation
        q = q_from_values(mdp, v)  # 3. policy improvement: pi(s) <- argmax_a Q(s, a)
        old = jnp.argmax(pi, axis=-1)
        gain = jnp.abs(best(q, mdp.minimize) - jnp.take_along_axis(q, old[:, None], -1)[:, 0])
        margin = IMPROVEMENT_TOL * jnp.maximum(1.0, jnp.max(jnp.abs(q)))
        new = jnp.where(gain > margin, best_action(q, mdp.minimize), old)  # keep old on ties
        stable = jnp.all(jnp.take_along_axis(pi, new[:, None], -1) == 1.0)  # pi already is new
        pi = jax.nn.one_hot(new, pi.shape[-1], dtype=pi.dtype)
        return k + 1, pi, v, history.at[k + 1].set(v), stable

    pi0 = policy_probabilities(mdp, policy)
    init = (jnp.int32(0), pi0, v0, history, jnp.asarray(False))
    k, _, v, history, stable = jax.lax.while_loop(running, improve, init)
    history = jnp.where(jnp.arange(max_iterations + 1)[:, None] > k, v, history)
    return _result(mdp, v, history, k, stable)


# ----- the host-side entry point -----


@dataclass(frozen=True)
class Solution:
    """`solve`'s answer, as numpy arrays; values in the MDP's own convention (costs or rewards)."""

    method: str
    values: np.ndarray
    """`[S]`"""
    q_values: np.ndarray
    """`[S, A]`"""
    policy: np.ndarray
    """`[S]` greedy actions"""
    iterations: int
    """Sweeps, improvement steps (policy iteration) or 1 (the exact solve)."""
    converged: bool
    history: np.ndarray
    """`[iterations + 1, S]`: V_0, then V after each sweep (or each policy evaluated)."""
    seconds: float
    """Wall time of the computation, compilation included."""

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (for JSON)."""
        return {
            key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in vars(self).items()
        }


def _check_policy(mdp: FiniteMDP, policy: Any) -> np.ndarray:
    """The policy as probabilities `[S, A]` (numpy), or ConfigError with what is wrong."""
    p = np.asarray(policy)
    num_states, num_actions = mdp.num_states, mdp.num_actions
    if p.shape == (num_states,) and np.issubdtype(p.dtype, np.integer):
        if p.min() < 0 or p.max() >= num_actions:
            raise ConfigError(f"policy actions must lie in 0..{num_actions - 1}")
        return np.eye(num_actions)[p]
    if p.shape != (num_states, num_actions):
        raise ConfigError(
            f"a policy must be actions [S] = [{num_states}] (ints) or probabilities [S, A] = "
            f"[{num_states}, {num_actions}], not {list(p.shape)}"
        )
    if (p < 0).any() or np.abs(p.sum(axis=-1) - 1.0).max() > 1e-5:
        raise ConfigError(
            "a policy's probabilities must be non-negative and sum to 1 in each state"
        )
    return p.astype(np.float64)


def check_arguments(
    method: Any, iterations: Any = None, tol: Any = DEFAULT_TOL, in_place: Any = False
) -> None:
    """Raise ConfigError for `solve`'s settings of the wrong type, out of range or not fitting
    the method; none needs the MDP, so `bellman solve` checks them before reading the env."""
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"unknown planning method {method!r}" + closest(str(method), METHODS))
    if iterations is not None:
        if not cfg.is_int(iterations):
            raise ConfigError(f"iterations must be an int or None, not {iterations!r}")
        cfg.require(iterations >= 0, f"iterations must be >= 0, not {iterations:,}")
        cfg.at_most("iterations", iterations, MAX_ITERATIONS, "solve keeps V_k of every iteration")
    if iterations is not None and method == "exact-evaluation":
        raise ConfigError("exact-evaluation solves a linear system: it has no iterations")
    tol = cfg.check_number("tol", tol)
    cfg.require(math.isfinite(tol) and tol >= 0, f"tol must be a finite number >= 0, not {tol:g}")
    if not isinstance(in_place, bool):
        raise ConfigError(f"in_place must be True or False, not {in_place!r}")
    if in_place and method != "policy-evaluation":
        raise ConfigError("in-place sweeps apply to policy-evaluation only")


_jitted: dict[str, Callable[..., Any]] = {}


def _compiled(name: str, fn: Callable[..., Any], static: tuple[str, ...]) -> Callable[..., Any]:
    if name not in _jitted:
        _jitted[name] = jax.jit(fn, static_argnames=static)
    return _jitted[name]


def solve(
    mdp: FiniteMDP,
    method: str,
    *,
    iterations: int | None = None,
    tol: float = DEFAULT_TOL,
    in_place: bool = False,
    policy: Any = None,
) -> Solution:
    """Solve (or evaluate a policy on) one MDP with one of `METHODS`, after host-side checks.

    Args:
        method: "value-iteration", "q-value-iteration", "policy-iteration" (exact evaluation),
            "policy-evaluation" (iterative) or "exact-evaluation" (the linear solve).
        iterations: run exactly this many sweeps (improvement steps for policy iteration),
            ignoring tol; default: until converged, at most MAX_SWEEPS (MAX_IMPROVEMENTS).
        tol: the convergence threshold on the largest change of a sweep.
        in_place: Gauss-Seidel sweeps (policy-evaluation only).
        policy: the policy to evaluate, or policy iteration's first policy: `[S]` int actions or
            `[S, A]` probabilities; default the equiprobable random policy.

    Raises:
        ConfigError: an unknown method or a setting that does not fit it.
        MDPError: gamma = 1 with a policy (or an MDP) whose episodes need not end.
    """
    check_arguments(method, iterations, tol, in_place)
    if policy is not None and method in ("value-iteration", "q-value-iteration"):
        raise ConfigError(f"{method} takes no policy: it finds the optimal one")
    probs = None if policy is None else _check_policy(mdp, policy)
    mdp_lib.check_discount(mdp)  # `make` checks it, but not `mdp.replace(gamma=...)`
    if float(mdp.gamma) == 1.0 and method in (
        "policy-evaluation",
        "exact-evaluation",
        "policy-iteration",
    ):
        uniform = np.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions)
        mdp_lib.check_policy_terminates(mdp, uniform if probs is None else probs)
    pi = None if probs is None else jnp.asarray(probs, mdp.transitions.dtype)
    if iterations is not None:
        tol = 0.0
    cap = MAX_IMPROVEMENTS if method == "policy-iteration" else MAX_SWEEPS
    limit = cap if iterations is None else iterations
    history = (limit + 1) * mdp.num_states * mdp.transitions.dtype.itemsize
    cfg.require_memory(
        "the history of V_k", history, f"{limit + 1:,} iterations x {mdp.num_states:,} states"
    )

    start = time.perf_counter()
    if method == "exact-evaluation":
        v = _compiled(method, evaluate_exact, ())(mdp, pi)
        v0 = _zero_terminal(mdp, mdp.initial_values)
        result = _result(mdp, v, jnp.stack([v0, v]), jnp.int32(1), jnp.all(jnp.isfinite(v)))
    elif method == "policy-evaluation":
        fn = _compiled(method, policy_evaluation, ("in_place", "max_iterations"))
        result = fn(mdp, pi, in_place=in_place, tol=tol, max_iterations=limit)
    elif method == "policy-iteration":
        fn = _compiled(method, policy_iteration, ("evaluation", "max_iterations"))
        result = fn(mdp, pi, tol=tol, max_iterations=limit)
    else:
        planner = value_iteration if method == "value-iteration" else q_value_iteration
        fn = _compiled(method, planner, ("max_iterations",))
        result = fn(mdp, tol=tol, max_iterations=limit)
    result = jax.block_until_ready(result)
    seconds = time.perf_counter() - start
    k = int(result.iterations)
    return Solution(
        method=method,
        values=np.asarray(result.values),
        q_values=np.asarray(result.q_values),
        policy=np.asarray(result.policy),
        iterations=k,
        converged=bool(result.converged),
        history=np.asarray(result.history[: k + 1]),
        seconds=seconds,
    )
