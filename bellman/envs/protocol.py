"""A user's JAX env checked against the protocol (`bellman.envs.core.JaxEnv`) before it trains.

`check_jax_env` reads the env's `spec` and traces `reset` and `step` once with `jax.eval_shape`,
which runs no computation: it sees only the structure, shapes and dtypes of what they return, and
compares them with the spec. Every mismatch is one sentence (an `EnvError`) naming the env and
what was expected, told before anything compiles instead of deep inside a compiled program:
- a missing or uncallable `spec`, `reset` or `step`, or a `spec` that is not an `EnvSpec` of
  hashable, well-formed values;
- `reset(key)` / `step(key, state, action)` that do not take those arguments;
- a result that is not `(state, TimeStep)`; an observation (or `final_obs`) whose shape or
  dtype differs from `spec.obs_shape` / `spec.obs_dtype`; a reward that is not a float32
  scalar; `terminated` / `truncated` that are not bool scalars; an `info` that is not a dict;
- a state from `step` whose structure, shapes or dtypes differ from `reset`'s (the runners carry
  it through `jax.lax.scan`);
- an exception raised by the env's code while it is traced, told as raised in `reset()` or
  `step()` at the env's own line (`bellman.envs.guard.raised`).
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from bellman.envs import guard
from bellman.envs.core import TimeStep
from bellman.envs.spaces import Box, Discrete, EnvSpec, Other
from bellman.errors import EnvError

OBJECT = "object:"
"""How a run records an env given as a Python object: `object:<module>.<class>`."""
PROTOCOL = (
    "a JAX env needs spec (a bellman.envs.EnvSpec), reset(key) and step(key, state, action), "
    "both returning (state, TimeStep)"
)
KEY = jax.ShapeDtypeStruct((2,), np.uint32)


def is_jax_env(obj: Any) -> bool:
    """Whether `obj` is an env object with the protocol's three names (not a class, not a
    gymnasium env)."""
    return (
        not inspect.isclass(obj)
        and not isinstance(obj, gym.Env)
        and all(hasattr(obj, name) for name in ("spec", "reset", "step"))
    )


def label(env: Any) -> str:
    """What a run records for an env given as an object: `object:<module>.<qualified name>`
    (of the class itself when given a class, for the sentence refusing it)."""
    kind = env if inspect.isclass(env) else type(env)
    return f"{OBJECT}{kind.__module__}.{kind.__qualname__}"


def _kind(obj: Any) -> str:
    kind = type(obj)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _shape(x: Any) -> str:
    """An array's dtype and shape as a message shows them (`float32 (3,)`)."""
    if x is None:
        return "None"
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        return f"a {_kind(x)}"
    return f"{np.dtype(x.dtype).name} {tuple(x.shape)}"


# ----- the spec -----


def _spec_problem(spec: EnvSpec) -> str | None:
    """What is wrong with the fields of an EnvSpec, or None."""

    def ints(value: Any, low: int) -> bool:
        return isinstance(value, tuple) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= low for d in value
        )

    def count(value: Any, low: int = 1) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    def floats(value: Any, size: int) -> bool:
        return (
            isinstance(value, tuple)
            and len(value) == size
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        )

    if not isinstance(spec.id, str):
        return f"spec.id must be a str, not {spec.id!r}"
    if not ints(spec.obs_shape, 0):
        return f"spec.obs_shape must be a tuple of ints such as (4,), not {spec.obs_shape!r}"
    try:
        numeric = isinstance(spec.obs_dtype, str) and np.dtype(spec.obs_dtype).kind in "biuf"
    except TypeError:
        numeric = False
    if not numeric:
        return f"spec.obs_dtype must name a numeric dtype such as 'float32', not {spec.obs_dtype!r}"
    space = spec.action_space
    if isinstance(space, gym.spaces.Space):
        return (
            f"spec.action_space must be bellman.envs.Discrete(n) or bellman.envs.Box(shape, low, "
            f"high), not gymnasium's {space}"
        )
    if isinstance(space, Discrete) and not count(space.n):
        return f"spec.action_space Discrete(n) needs an int n >= 1, not {space.n!r}"
    if isinstance(space, Box):
        if not ints(space.shape, 1):
            return f"spec.action_space Box needs a shape of ints such as (1,), not {space.shape!r}"
        size = int(np.prod(space.shape))
        if not (floats(space.low, size) and floats(space.high, size)):
            return (
                f"spec.action_space Box of shape {space.shape} needs low and high as tuples of "
                f"{size} numbers"
            )
    if not isinstance(space, Discrete | Box | Other):
        return (
            "spec.action_space must be bellman.envs.Discrete(n) or bellman.envs.Box(shape, low, "
            f"high), not {space!r}"
        )
    if spec.max_episode_steps is not None and not count(spec.max_episode_steps):
        return (
            "spec.max_episode_steps must be an int >= 1 (the time limit) or None, not "
            f"{spec.max_episode_steps!r}"
        )
    if spec.num_states is not None and not count(spec.num_states):
        return f"spec.num_states must be an int >= 1 or None, not {spec.num_states!r}"
    size = int(np.prod(spec.obs_shape))
    for name in ("obs_low", "obs_high"):
        value = getattr(spec, name)
        if value is not None and not floats(value, size):
            return f"spec.{name} must be None or a tuple of {size} numbers (one per observed value)"
    if not count(spec.frame_stack):
        return f"spec.frame_stack must be an int >= 1, not {spec.frame_stack!r}"
    try:
        hash(spec)
    except TypeError as exc:
        return f"spec must be hashable (tuples, not lists or arrays): {exc}"
    return None


def _action(spec: EnvSpec) -> jax.ShapeDtypeStruct | None:
    """An action of the spec's space, as the runners send it (None: a space bellman's
    algorithms refuse anyway)."""
    space = spec.action_space
    if isinstance(space, Discrete):
        return jax.ShapeDtypeStruct((), np.int32)
    if isinstance(space, Box):
        return jax.ShapeDtypeStruct(space.shape, np.float32)
    return None


# ----- reset and step -----


def _signature_problem(method: Any, args: tuple[Any, ...]) -> str | None:
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # a builtin or C function: let the trace tell
        return None
    try:
        signature.bind(*args)
    except TypeError:
        return str(signature)
    return None


def _trace(env_id: str, name: str, method: Any, *args: Any) -> Any:
    """`jax.eval_shape(method, *args)`, its failures told as one sentence."""
    try:
        return jax.eval_shape(method, *args)
    except EnvError:
        raise
    except Exception as exc:
        error = guard.raised(env_id, exc, name)
        if error is not None:
            raise error from exc
        text = " ".join(str(exc).split())
        text = text if len(text) <= guard.MAX_MESSAGE else text[: guard.MAX_MESSAGE - 3] + "..."
        raise EnvError(
            f"environment '{env_id}': bellman could not trace {name}() with jax.eval_shape "
            f"({type(exc).__name__}: {text}); {name} must return (state, TimeStep) of JAX arrays"
        ) from exc


def _check_timestep(env_id: str, call: str, result: Any, spec: EnvSpec) -> Any:
    """The state of `result`, a traced `(state, TimeStep)`, after checking the TimeStep."""
    what = f"environment '{env_id}': {call} returned"
    if not isinstance(result, tuple | list) or len(result) != 2:
        items = f" of {len(result)} items" if isinstance(result, tuple | list) else ""
        raise EnvError(f"{what} {_shape(result)}{items}, not (state, TimeStep)")
    state, ts = result
    if not isinstance(ts, TimeStep):
        raise EnvError(
            f"{what} (state, a {_kind(ts)}), but the second item must be a bellman.envs.TimeStep"
        )
    expected = f"{np.dtype(spec.obs_dtype).name} {spec.obs_shape}"
    for name in ("obs", "final_obs"):
        value = getattr(ts, name)
        if _shape(value) != expected:
            raise EnvError(
                f"{what} {name} of {_shape(value)} (dtype and shape), but its spec says "
                f"obs_dtype '{spec.obs_dtype}' and obs_shape {spec.obs_shape}"
            )
    if _shape(ts.reward) != "float32 ()":
        raise EnvError(f"{what} a reward of {_shape(ts.reward)}, not a float32 scalar")
    for name in ("terminated", "truncated"):
        value = getattr(ts, name)
        if _shape(value) != "bool ()":
            raise EnvError(f"{what} {name} of {_shape(value)}, not a bool scalar")
    if not isinstance(ts.info, dict):
        raise EnvError(f"{what} info of type {_kind(ts.info)}, not a dict of arrays")
    return state


def _state_difference(before: Any, after: Any) -> str | None:
    """How `after`'s structure, shapes or dtypes differ from `before`'s, or None."""
    flat_before, tree_before = jax.tree_util.tree_flatten_with_path(before)
    flat_after, tree_after = jax.tree_util.tree_flatten_with_path(after)
    structure: Any = tree_before  # PyTreeDef compares, though its stubs do not say so
    if structure != tree_after:
        if type(before) is not type(after):
            return f"a state of type {_kind(after)} where reset() gave a {_kind(before)}"
        return f"a {_kind(after)} state of other fields or nesting than reset()'s"
    for (path, a), (_, b) in zip(flat_before, flat_after, strict=True):
        if _shape(a) != _shape(b):
            where = jax.tree_util.keystr(path) or "the state"
            return f"{where} of {_shape(b)} where reset() gave {_shape(a)}"
    return None


def check_jax_env(env_id: str, env: Any) -> None:
    """Raise EnvError (one sentence) unless `env` follows bellman's JAX env protocol."""
    name = f"environment '{env_id}'"
    if inspect.isclass(env):
        raise EnvError(
            f"{name} is a class, not an env object: pass an instance, {env.__qualname__}()"
        )
    if isinstance(env, gym.Env):
        raise EnvError(
            f"{name} is a gymnasium.Env object: bellman creates gymnasium envs itself, one per "
            "parallel env; name it by its id or as module:Class, or write it as a JAX env"
        )
    for attr in ("spec", "reset", "step"):
        with guard.EnvCall(env_id, attr):
            present = hasattr(env, attr)
        if not present:
            raise EnvError(f"{name} (a {_kind(env)}) has no {attr}: {PROTOCOL}")
    spec = env.spec
    if not isinstance(spec, EnvSpec):
        raise EnvError(
            f"{name} has a spec of type {_kind(spec)}, not bellman.envs.EnvSpec (id, obs_shape, "
            "obs_dtype, action_space, max_episode_steps)"
        )
    problem = _spec_problem(spec)
    if problem is not None:
        raise EnvError(f"{name}: {problem}")
    cache_key = getattr(env, "cache_key", None)
    if cache_key is not None and not isinstance(cache_key, str):
        raise EnvError(
            f"{name} has a cache_key of type {_kind(cache_key)}; it must be a str naming the "
            "env's code and parameters, or None (compile every run)"
        )
    action = _action(spec)
    calls = [("reset", "key", (KEY,)), ("step", "key, state, action", (KEY, None, action))]
    for method, params, args in calls:
        fn = getattr(env, method)
        if not callable(fn):
            raise EnvError(f"{name} has a {method} of type {_kind(fn)}, not a method: {PROTOCOL}")
        signature = _signature_problem(fn, args)
        if signature is not None:
            raise EnvError(f"{name} has {method}{signature}, but bellman calls {method}({params})")
    state = _check_timestep(env_id, "reset(key)", _trace(env_id, "reset", env.reset, KEY), spec)
    if action is None:
        return
    result = _trace(env_id, "step", env.step, KEY, state, action)
    next_state = _check_timestep(env_id, "step(key, state, action)", result, spec)
    difference = _state_difference(state, next_state)
    if difference is not None:
        raise EnvError(
            f"environment '{env_id}': step(key, state, action) returned {difference}; the "
            "state must keep its structure, shapes and dtypes"
        )
