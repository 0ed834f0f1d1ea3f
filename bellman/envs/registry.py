"""Env ids to environments: a JAX implementation when one exists, else gymnasium.

- `compiled` backend: gymnax's envs and bellman's own JAX envs, trained in one XLA program.
- `gymnasium` backend: any registered gymnasium id, or `module:Class` for a user's own env.
`--backend auto` (the default) picks the compiled backend whenever the id has a JAX implementation.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym

from bellman.envs import atari, discretize, finite, guard, probes, roboparking
from bellman.envs.core import JaxEnv
from bellman.envs.gymnasium_env import EnvFactory, prepare, spec_of
from bellman.envs.gymnax_env import GYMNAX_IDS, GymnaxEnv
from bellman.envs.spaces import EnvSpec
from bellman.errors import EnvError, UnknownNameError, closest

Backend = Literal["auto", "compiled", "gymnasium"]
BACKENDS: tuple[str, ...] = ("auto", "compiled", "gymnasium")


def _gymnax(env_id: str) -> Callable[[], JaxEnv]:
    return lambda: GymnaxEnv(env_id)


def _finite(env_id: str) -> Callable[[], JaxEnv]:
    return lambda: finite.FiniteMDPEnv(finite.MDPS[env_id](), env_id)


def _toy_text(env_id: str) -> Callable[[], JaxEnv]:
    return lambda: finite.FiniteMDPEnv(finite.toy_text_mdp(env_id), env_id)


JAX_ENVS: dict[str, Callable[[], JaxEnv]] = {
    **{env_id: _gymnax(env_id) for env_id in GYMNAX_IDS},
    **probes.PROBES,
    **{env_id: _finite(env_id) for env_id in finite.MDPS},
    **{env_id: _toy_text(env_id) for env_id in finite.TOY_TEXT},
    "RoboParking-v0": roboparking.RoboParking,
    "PendulumDiscrete-v1": discretize.pendulum_discrete,
}

TWINS: dict[str, str] = {
    **{env_id: finite.gymnasium_id(env_id) for env_id in finite.MDPS},
    "RoboParking-v0": "bellman/RoboParking-v0",
    "PendulumDiscrete-v1": "bellman/PendulumDiscrete-v1",
}
"""JAX env id -> the id of its gymnasium twin, where they differ (bellman's own envs are
registered with gymnasium as `bellman/<id>`)."""


def jax_id(env_id: str) -> str:
    """The JAX registry's id for `env_id` (`bellman/Maze-v0` and `Maze-v0` are the same env)."""
    for jax_name, gym_name in TWINS.items():
        if env_id == gym_name:
            return jax_name
    return env_id


def user_module(env_id: str) -> str | None:
    """The module a `module:Class` env id imports (running its code), None for registered ids."""
    return env_id.partition(":")[0] if ":" in env_id else None


MUJOCO_TASKS = (
    "Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup", "InvertedDoublePendulum",
    "InvertedPendulum", "Pusher", "Reacher", "Swimmer", "Walker2d",
)  # fmt: skip
"""Gymnasium's MuJoCo tasks (by name before the version), which get MuJoCo presets."""


def is_mujoco(spec: EnvSpec) -> bool:
    """Whether the env is one of gymnasium's MuJoCo tasks."""
    return spec.id.split("-")[0] in MUJOCO_TASKS


@dataclass
class ResolvedEnv:
    """An env id resolved to one backend, with what the runners need to build it."""

    id: str
    backend: Literal["compiled", "gymnasium"]
    spec: EnvSpec
    jax_env: JaxEnv | None = None
    make_gym: EnvFactory | None = None
    """Creates one gymnasium env (host backend, or the gymnasium twin of a JAX env, if any)."""


def gymnasium_ids() -> list[str]:
    return sorted(gym.registry.keys())


def _user_factory(env_id: str) -> EnvFactory:
    module_name, _, attr = env_id.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: modules of the current project
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvError(f"cannot import module '{module_name}' for env '{env_id}': {exc}") from None
    except SyntaxError as exc:
        where = guard.location(exc.filename or module_name, exc.lineno)
        raise EnvError(
            f"cannot import module '{module_name}' for env '{env_id}': {exc.msg} at {where}"
        ) from exc
    except Exception as exc:  # the module's own code failed
        error = guard.raised(env_id, exc, during=f"while importing module '{module_name}'")
        if error is None:
            raise
        raise error from exc
    target: Any = getattr(module, attr, None)
    # a user's env is created `Checked`: its exceptions and API mistakes are one sentence
    if inspect.isclass(target) and issubclass(target, gym.Env):
        return lambda **kwargs: guard.make_checked(env_id, target, "__init__", kwargs)
    if target is None and attr in gym.registry:
        make = functools.partial(gym.make, attr)
        return lambda **kwargs: guard.make_checked(env_id, make, "__init__", kwargs)
    if callable(target):
        name = getattr(target, "__name__", attr)
        return lambda **kwargs: guard.make_checked(env_id, target, name, kwargs)
    names = [n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, gym.Env)]
    raise UnknownNameError(
        f"module '{module_name}' has no gymnasium env or registered id '{attr}'"
        + closest(attr, names + gymnasium_ids())
    )


def _unknown(env_id: str) -> UnknownNameError:
    return UnknownNameError(
        f"unknown environment '{env_id}'" + closest(env_id, [*JAX_ENVS, *gymnasium_ids()])
    )


def gymnasium_factory(env_id: str) -> EnvFactory:
    """A function creating one gymnasium env for `env_id` (a registered id or `module:Class`);
    Atari games come with the standard preprocessing (`bellman.envs.atari`)."""
    if ":" in env_id:
        return _user_factory(env_id)
    if atari.is_atari(env_id):
        atari.register()
        if env_id in gym.registry:
            return lambda **kwargs: atari.make(env_id, **kwargs)
    if env_id not in gym.registry:
        raise _unknown(env_id)
    return lambda **kwargs: gym.make(env_id, **kwargs)


def probe_gymnasium(env_id: str, factory: EnvFactory) -> EnvSpec:
    """Create the env once to read its spaces, turning its failures into one clear sentence.

    A user's own env (`module:Class`, which `_user_factory` creates `Checked`) is first checked
    by gymnasium's env checker (`bellman.envs.guard.check_user_env`); gymnasium's registered
    envs and bellman's are trusted, and skip the checker's resets and steps.
    """
    try:
        env = factory()
    except gym.error.DependencyNotInstalled as exc:
        raise EnvError(f"environment '{env_id}' needs a missing dependency: {exc}") from None
    except (gym.error.Error, TypeError, ValueError, ImportError, OSError) as exc:
        raise EnvError(f"cannot create environment '{env_id}': {exc}") from None
    try:
        if isinstance(env, guard.Checked):
            guard.check_user_env(env_id, env)
        prepared = prepare(env)
        if not isinstance(prepared.observation_space, gym.spaces.Box | gym.spaces.Discrete):
            raise EnvError(
                f"environment '{env_id}' has observations bellman cannot use: "
                f"{env.observation_space} (it needs a Box, a Discrete, or a space that "
                "gymnasium flattens into a Box)"
            )
        spec = spec_of(env_id, prepared)
    except BaseException:
        with contextlib.suppress(Exception):
            env.close()  # the first failure is the one to tell
        raise
    env.close()
    return spec


def resolve(env_id: str, backend: str = "auto") -> ResolvedEnv:
    """Resolve `env_id` for `backend` ('auto', 'compiled' or 'gymnasium')."""
    if backend not in BACKENDS:
        raise UnknownNameError(f"unknown backend '{backend}'" + closest(backend, BACKENDS))
    name = jax_id(env_id)
    gym_name = TWINS.get(name, env_id)
    twin = gym_name in gym.registry or ":" in gym_name
    if backend in ("auto", "compiled") and name in JAX_ENVS:
        env = JAX_ENVS[name]()
        make_gym = gymnasium_factory(gym_name) if twin else None
        return ResolvedEnv(name, "compiled", env.spec, jax_env=env, make_gym=make_gym)
    if backend == "compiled":
        if twin:
            raise EnvError(
                f"environment '{env_id}' has no JAX implementation; "
                "train it with --backend gymnasium"
            )
        raise _unknown(env_id)
    factory = gymnasium_factory(gym_name)  # `Maze-v0` on the host backend is `bellman/Maze-v0`
    return ResolvedEnv(env_id, "gymnasium", probe_gymnasium(gym_name, factory), make_gym=factory)


def list_envs() -> dict[str, list[str]]:
    """Env ids per backend, for `bellman list envs`."""
    return {"compiled": sorted(JAX_ENVS), "gymnasium": gymnasium_ids()}


def render_kwargs() -> dict[str, Any]:
    """Keyword arguments that make a gymnasium env render frames off-screen."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    return {"render_mode": "rgb_array"}
