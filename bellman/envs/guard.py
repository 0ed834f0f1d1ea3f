"""An environment's failures, told in one sentence that names the env, the call and the line.

bellman calls into an environment's code when it creates it and in reset(), step(), render() and
close(). An exception from there becomes an `EnvError` naming the env id, the method, and the
innermost line of the env's own code in the traceback (`EnvCall`, `raised`):

    environment 'my_envs:Broken' raised ValueError in step() at my_envs.py:17: bad action

The env's code is every frame outside bellman, gymnasium, numpy and Python's standard library
(`env_frames`). An exception whose traceback never passes through it is not the env's doing (a
bug in bellman, say) and propagates unchanged. The original exception is the EnvError's cause
(`raise ... from`), so the full traceback is still there for `--debug`.

A user's own env (`module:Class`, made by `make_checked`) is also checked, so that its API
mistakes read the same way instead of surfacing deep inside numpy:
- at every reset() and step(), by `Checked`: a few comparisons (the result's length, the
  observation's shape and dtype, the reward's and info's types); a result that fails them is
  told by `api_problem` (wrong shape, non-numeric dtype, the old gym 4-tuple, a reward that is
  not a number);
- once before it trains or is evaluated, by `check_user_env`: one reset() and step() through
  `Checked`, then gymnasium's own env checker. gymnasium's and bellman's registered envs skip it.
NaN and infinite observations and rewards, from any env, are caught on the batched arrays by
`bellman.envs.gymnasium_env.GymnasiumVectorEnv` (`nonfinite`), before a learner sees them.
"""

from __future__ import annotations

import os
import re
import sysconfig
import traceback
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, NamedTuple, NoReturn

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Discrete
from gymnasium.utils.env_checker import check_env

from bellman.errors import BellmanWarning, EnvError

API_METHODS = frozenset({"__init__", "reset", "step", "render", "close"})
SCALAR_TYPES = frozenset({bool, int, float, np.bool_, np.int32, np.int64, np.float32, np.float64})
"""Types of a reward (or a Discrete observation) that need no closer look."""
MAX_MESSAGE = 300
"""Characters of an exception's message kept in the sentence."""
MAX_WARNINGS = 3
"""Warnings of gymnasium's env checker shown, one line each; the last one counts the rest."""
IGNORED_WARNINGS = ("different from the unwrapped version",)
"""Checker warnings about bellman's own doing (it checks the env as the user's factory made it)."""


NEEDS_NUMBER = "gymnasium's API needs a number"


def _directory(path: str) -> str:
    """`path` resolved, with a trailing separator (`/a/numpy` must not match `/a/numpyx`)."""
    return os.path.join(os.path.realpath(path), "")


_BELLMAN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARIES = tuple(
    _directory(d)
    for d in (_BELLMAN, os.path.dirname(gym.__file__ or ""), os.path.dirname(np.__file__ or ""))
)
"""bellman, gymnasium and numpy: never the env's code."""
_STDLIB = tuple(_directory(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib"))
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _is_library(path: str) -> bool:
    if path.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return True
    real = os.path.realpath(path)
    if real.startswith(_LIBRARIES):
        return True
    return real.startswith(_STDLIB) and "-packages" not in real


class Frame(NamedTuple):
    path: str
    line: int
    function: str


def env_frames(exc: BaseException) -> list[Frame]:
    """The frames of `exc`'s traceback in the env's code, outermost first."""
    return [
        Frame(frame.f_code.co_filename, line, frame.f_code.co_name)
        for frame, line in traceback.walk_tb(exc.__traceback__)
        if not _is_library(frame.f_code.co_filename)
    ]


def location(path: str, line: int | None) -> str:
    """`path:line`, the path relative to the working directory when it is inside it."""
    cwd = os.path.join(os.getcwd(), "")
    return f"{path.removeprefix(cwd)}:{line}"


def _where(frames: list[Frame]) -> str:
    """The innermost frame, preferring the user's own files to installed packages."""
    own = [f for f in frames if "-packages" not in f.path] or frames
    return location(own[-1].path, own[-1].line)


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def raised(
    env_id: str, exc: BaseException, method: str | None = None, during: str | None = None
) -> EnvError | None:
    """The EnvError telling that the env's code raised `exc` in `method()` (or `during` a
    phrase such as "while importing module 'm'"); None when `exc` is not the env's: an EnvError
    already, or an exception whose traceback never passes through the env's code.

    The method is the outermost frame of the env's code when that is one of the API methods (a
    vector env's step() may call reset() for an episode that ended), else `method`.
    """
    frames = env_frames(exc)
    if isinstance(exc, EnvError) or not frames:
        return None
    if during is None:
        outer = frames[0].function
        during = f"in {outer if outer in API_METHODS or method is None else method}()"
    text = _message(exc)
    return EnvError(
        f"environment '{env_id}' raised {type(exc).__name__} {during} at {_where(frames)}"
        + (f": {text}" if text else "")
    )


def reraise(env_id: str, exc: Exception, method: str) -> NoReturn:
    """Raise the EnvError of `raised` for `exc`, chained to it, or `exc` itself when it is not
    the env's doing (in an `except` clause: `except Exception as exc: reraise(...)`)."""
    error = raised(env_id, exc, method)
    if error is None:
        raise exc
    raise error from exc


class EnvCall:
    """`with EnvCall(env_id, "step"): ...`: a call into the env's code, whose exceptions
    become the EnvError of `raised`, chained to the original (others propagate unchanged)."""

    def __init__(self, env_id: str, method: str):
        self.env_id, self.method = env_id, method

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if isinstance(exc, Exception):
            error = raised(self.env_id, exc, self.method)
            if error is not None:
                raise error from exc
        return False


def _observation_problem(obs: Any, space: Any) -> tuple[str, str] | None:
    """(what the observation is, what the space says) when they disagree, for Box and Discrete."""
    if not isinstance(space, Box | Discrete):
        return None
    try:
        array = np.asarray(obs)
    except (ValueError, TypeError):  # ragged nested lists
        return f"of type {type(obs).__name__}", f"its observation_space is {space}"
    if array.dtype.kind not in "biuf":
        return f"of dtype {array.dtype}", f"its observation_space {space} needs numbers"
    if array.shape != space.shape:
        return f"of shape {array.shape}", f"its observation_space declares {space.shape}"
    return None


def api_problem(env_id: str, method: str, result: Any, space: Any) -> str | None:
    """What is wrong with what the env's reset() or step() returned, in one sentence, or None.

    Args:
        env_id: the env's id, as the user gave it.
        method: "reset" or "step".
        result: what the method returned.
        space: the env's observation space.
    """
    said = f"environment '{env_id}' returned"
    if method == "step":
        arity, layout = 5, "(obs, reward, terminated, truncated, info)"
    else:
        arity, layout = 2, "(obs, info)"
    if not isinstance(result, tuple) or len(result) != arity:
        if method == "step" and isinstance(result, tuple) and len(result) == 4:
            return (
                f"{said} 4 values from step(), as the old gym API did (obs, reward, done, info); "
                f"gymnasium's API returns {layout}"
            )
        got = f"{len(result)} values" if isinstance(result, tuple) else type(result).__name__
        return f"{said} {got} from {method}() where gymnasium's API returns {layout}"
    problem = _observation_problem(result[0], space)
    if problem is not None:
        return f"{said} an observation {problem[0]} from {method}() where {problem[1]}"
    if method == "step" and np.ndim(result[1]) != 0:
        return f"{said} a reward of shape {np.shape(result[1])} from step() where {NEEDS_NUMBER}"
    if method == "step" and np.asarray(result[1]).dtype.kind not in "biuf":
        return (
            f"{said} a reward of type {type(result[1]).__name__} from step() where {NEEDS_NUMBER}"
        )
    if not isinstance(result[-1], dict):
        kind = type(result[-1]).__name__
        return f"{said} an info of type {kind} from {method}() where gymnasium's API needs a dict"
    return None


class Checked(gym.Wrapper):
    """A user's env whose exceptions (`raised`) and API mistakes (`api_problem`) are EnvErrors.

    Every reset() and step() costs a few comparisons on what the env returned; only a result
    that fails them is looked at closely (a list for an observation, a 0-d array for a reward).
    """

    def __init__(self, env_id: str, env: gym.Env):
        super().__init__(env)
        self.env_id = env_id
        space = env.observation_space
        self._shape = space.shape if isinstance(space, Box | Discrete) else None

    def _suspect(self, result: Any, arity: int) -> bool:
        if type(result) is not tuple or len(result) != arity or type(result[-1]) is not dict:
            return True
        if arity == 5 and type(result[1]) not in SCALAR_TYPES:
            return True
        if self._shape is None:
            return False
        obs = result[0]
        if type(obs) is np.ndarray:
            return obs.shape != self._shape or obs.dtype.kind not in "biuf"
        return self._shape != () or type(obs) not in SCALAR_TYPES

    def _check(self, method: str, result: Any) -> Any:
        problem = api_problem(self.env_id, method, result, self.env.observation_space)
        if problem is not None:
            raise EnvError(problem)
        return result

    def reset(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """The env's reset(), called with exactly the arguments given (not always `options`)."""
        try:
            result = self.env.reset(**kwargs)
        except Exception as exc:
            reraise(self.env_id, exc, "reset")
        return self._check("reset", result) if self._suspect(result, 2) else result

    def step(self, action: Any) -> Any:
        try:
            result = self.env.step(action)
        except Exception as exc:
            reraise(self.env_id, exc, "step")
        return self._check("step", result) if self._suspect(result, 5) else result

    def render(self) -> Any:
        with EnvCall(self.env_id, "render"):
            return self.env.render()

    def close(self) -> None:
        with EnvCall(self.env_id, "close"):
            self.env.close()


def jax_env_on_gymnasium(env_id: str) -> str:
    """The sentence for a JAX env asked for on the gymnasium backend."""
    return (
        f"environment '{env_id}' is a JAX env, not a gymnasium.Env: it trains on the compiled "
        "backend (--backend compiled, or auto)"
    )


def make_checked(
    env_id: str, make: Callable[..., Any], method: str, kwargs: dict[str, Any]
) -> Checked:
    """Create a user's env with `make(**kwargs)` (its exceptions told as raised in `method`)."""
    with EnvCall(env_id, method):
        env = make(**kwargs)
    if not isinstance(env, gym.Env) and all(hasattr(env, n) for n in ("spec", "reset", "step")):
        raise EnvError(jax_env_on_gymnasium(env_id))
    if not isinstance(env, gym.Env):
        kind = type(env)
        raise EnvError(
            f"environment '{env_id}' is a {kind.__module__}.{kind.__qualname__}, not a "
            "gymnasium.Env: bellman trains envs written with gymnasium's API (an env written for "
            "the old gym package needs porting)"
        )
    return Checked(env_id, env)


def _first_contact(env: Checked) -> None:
    """What bellman needs of any env: gymnasium spaces, and one reset() and step() through
    `Checked`, whose sentences say more than the checker's assertions; anything else that goes
    wrong here is left for the checker to explain."""
    for name in ("observation_space", "action_space"):
        space = getattr(env, name)
        if not isinstance(space, gym.Space):
            raise EnvError(
                f"environment '{env.env_id}' has an {name} of type {type(space).__name__}, not a "
                "gymnasium space (gymnasium.spaces.Box, Discrete, ...)"
            )
    try:
        env.reset(seed=0)
        env.step(env.action_space.sample())
    except EnvError:
        raise
    except Exception:  # a reset() without `seed`, say: gymnasium's checker names it
        return


def check_user_env(env_id: str, env: Checked) -> None:
    """Check a user's env once, before it trains or is evaluated.

    What bellman needs is required (`_first_contact`: gymnasium spaces, a reset() and a step()
    of the right shapes); then gymnasium's env checker (`gymnasium.utils.env_checker.check_env`,
    as Stable-Baselines3 runs its own) gives advice on the env as the user made it, without the
    render and close checks (bellman renders only videos). It resets the env a few times and
    steps it three times. An exception in the env's code is told by `raised`; an assertion of
    the checker (float64 observations in a float32 Box, a reset() that ignores its seed, ...)
    is a convention the env breaks, not a fault bellman trips on, so it is a warning like the
    checker's own warnings: at most MAX_WARNINGS BellmanWarnings, one line each.
    """
    _first_contact(env)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_env(env.env, skip_render_check=True, skip_close_check=True)
        except AssertionError as exc:
            error = raised(env_id, exc)
            if error is not None:
                raise error from exc
            failed = _message(exc) or type(exc).__name__
            warnings.warn(f"{failed} (bellman trains the env anyway)", stacklevel=1)
        except Exception as exc:
            error = raised(env_id, exc) or EnvError(
                f"environment '{env_id}' failed gymnasium's env check: "
                + (_message(exc) or type(exc).__name__)
            )
            raise error from exc
    _warn(env_id, [str(w.message) for w in caught])


def _warn(env_id: str, messages: list[str]) -> None:
    texts: list[str] = []
    for message in messages:
        text = " ".join(_ANSI.sub("", message).split()).removeprefix("WARN: ")
        if text not in texts and not any(s in text for s in IGNORED_WARNINGS):
            texts.append(text)
    more = len(texts) - MAX_WARNINGS
    for i, text in enumerate(texts[:MAX_WARNINGS]):
        rest = f" (and {more} more)" if more > 0 and i == MAX_WARNINGS - 1 else ""
        warnings.warn(
            f"environment '{env_id}': gymnasium's env check warns: {text}{rest}",
            BellmanWarning,
            stacklevel=3,
        )


def nonfinite(
    env_id: str, what: str, value: np.ndarray, method: str, env_index: int, step: int | None
) -> EnvError:
    """The EnvError for a NaN or infinite `what` ("observation", "reward") that env number
    `env_index` of a vector env returned from `method` (at `step` of its episode, for step())."""
    flat = np.asarray(value, np.float64).reshape(-1)
    first = int(np.flatnonzero(~np.isfinite(flat))[0])
    index = tuple(int(i) for i in np.unravel_index(first, np.shape(value)))
    at = f" at index {index if len(index) > 1 else first}" if flat.size > 1 else ""
    when = f"env {env_index}" + (f", step {step} of its episode" if step is not None else "")
    return EnvError(
        f"environment '{env_id}' returned a non-finite {what} from {method}() "
        f"({flat[first]}{at}; {when})"
    )
