"""Env ids to environments: a JAX implementation when one exists, else gymnasium.

- `compiled` backend: gymnax's envs, bellman's own JAX envs, jumanji's (`jumanji:<id>`, an
  optional dependency) and a user's own JAX env (`module:attr` naming an env object or a function
  or class that makes one, or the object itself from Python), trained in one XLA program.
- `gymnasium` backend: any registered gymnasium id, or `module:Class` for a user's own env.
`--backend auto` (the default) picks the compiled backend whenever the id has a JAX implementation;
for `module:attr` it imports the module and looks at what `attr` is or makes (`_load_user`).
A user's JAX env is checked against the protocol before it trains (`bellman.envs.protocol`).

An env's own settings (`bellman.envs.options`): `env_params` change a gymnax env's parameters;
`env_kwargs` are keyword arguments of whatever makes the env (`gymnasium.make`, a user's
`module:attr`, `jumanji.make`). `ResolvedEnv` holds both as the JSON a run records.
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

from bellman.envs import (
    atari,
    digits,
    discretize,
    finite,
    games,
    guard,
    options,
    probes,
    protocol,
    roboparking,
)
from bellman.envs.core import JaxEnv
from bellman.envs.gymnasium_env import EnvFactory, prepare, spec_of
from bellman.envs.gymnax_env import GYMNAX_IDS, GymnaxEnv
from bellman.envs.jumanji_env import JUMANJI_IDS, JumanjiEnv
from bellman.envs.jumanji_env import PREFIX as JUMANJI
from bellman.envs.spaces import EnvSpec
from bellman.errors import ConfigError, EnvError, UnknownNameError, closest

Backend = Literal["auto", "compiled", "gymnasium"]
BACKENDS: tuple[str, ...] = ("auto", "compiled", "gymnasium")


def _gymnax(env_id: str) -> Callable[[], JaxEnv]:
    return lambda: GymnaxEnv(env_id)


def _finite(env_id: str) -> Callable[[], JaxEnv]:
    return lambda: finite.FiniteMDPEnv(finite.MDPS[env_id](), env_id)


def _toy_text(env_id: str) -> Callable[[], JaxEnv]:
    return lambda: finite.FiniteMDPEnv(finite.toy_text_mdp(env_id), env_id)


def _jumanji(env_id: str) -> Callable[..., JaxEnv]:
    return lambda **kwargs: JumanjiEnv(env_id, **kwargs)


def _game(game_id: str) -> Callable[[], JaxEnv]:
    return lambda: games.GameEnv(game_id)


JAX_ENVS: dict[str, Callable[..., JaxEnv]] = {
    **{env_id: _gymnax(env_id) for env_id in GYMNAX_IDS},
    **{JUMANJI + env_id: _jumanji(env_id) for env_id in JUMANJI_IDS},
    **probes.PROBES,
    **{env_id: _finite(env_id) for env_id in finite.MDPS},
    **{env_id: _toy_text(env_id) for env_id in finite.TOY_TEXT},
    "RoboParking-v0": roboparking.RoboParking,
    digits.ENV_ID: digits.TranslatedDigits,
    "PendulumDiscrete-v1": discretize.pendulum_discrete,
    **{game_id: _game(game_id) for game_id in games.GAMES},
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
    """The module a `module:attr` env id imports (running its code); None for registered ids
    (`jumanji:Snake-v1` too) and for a run's record of an env object (`object:...`)."""
    if ":" not in env_id or env_id in JAX_ENVS or env_id.startswith(protocol.OBJECT):
        return None
    return env_id.partition(":")[0]


def env_label(env: Any) -> str:
    """What a run records as its env: the id as given, or `object:<module>.<class>` for an env
    object (`bellman.train("ppo", env=MyEnv())`). A plain value (a number, None) is refused."""
    if isinstance(env, str):
        return env
    if env is None or isinstance(env, bool | int | float | complex | bytes | list | tuple | dict):
        raise ConfigError(
            f"env must be of type str, not {env!r} (an env id, module:attr, or a JAX env object)"
        )
    return protocol.label(env)


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
    env_params: str | None = None
    """The gymnax parameters changed, as the JSON a run records (None: the defaults)."""
    env_kwargs: str | None = None
    """The keyword arguments the env was made with, as the JSON a run records (None: none)."""


def gymnasium_ids() -> list[str]:
    return sorted(gym.registry.keys())


def _user_target(env_id: str) -> Any:
    """Import the module of `module:attr` (the current directory first, as `python -m` does)
    and return its attribute, or None when it has none."""
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
    return getattr(module, attr, None)


def _user_factory(env_id: str) -> EnvFactory:
    module_name, _, attr = env_id.partition(":")
    target: Any = _user_target(env_id)
    # a user's env is created `Checked`: its exceptions and API mistakes are one sentence
    if inspect.isclass(target) and issubclass(target, gym.Env):
        return lambda **kwargs: guard.make_checked(env_id, target, "__init__", kwargs)
    if target is None and attr in gym.registry:
        make = functools.partial(gym.make, attr)
        return lambda **kwargs: guard.make_checked(env_id, make, "__init__", kwargs)
    if protocol.is_jax_env(target):
        raise EnvError(guard.jax_env_on_gymnasium(env_id))
    if callable(target):
        name = getattr(target, "__name__", attr)
        return lambda **kwargs: guard.make_checked(env_id, target, name, kwargs)
    module = sys.modules[module_name]
    names = [n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, gym.Env)]
    raise UnknownNameError(
        f"module '{module_name}' has no gymnasium env, JAX env or registered id '{attr}'"
        + closest(attr, names + gymnasium_ids())
    )


def _user_jax_env(env_id: str, kwargs: dict[str, Any]) -> Any:
    """The JAX env that `module:attr` names (an env object) or makes (a function or class called
    with `kwargs`), or None when it names a gymnasium env, a gymnasium id or nothing (the
    gymnasium backend tells which). What is returned is checked by the caller."""
    attr = env_id.partition(":")[2]
    target: Any = _user_target(env_id)
    if target is None or (inspect.isclass(target) and issubclass(target, gym.Env)):
        return None
    if protocol.is_jax_env(target) or not callable(target):  # an object, meant as the env
        if kwargs:
            raise ConfigError(
                f"env_kwargs cannot be passed to '{env_id}', an env object already made; name a "
                "function or class that makes the env from them"
            )
        return target
    method = "__init__" if inspect.isclass(target) else getattr(target, "__name__", attr)
    try:
        with guard.EnvCall(env_id, method):
            made = target(**kwargs)
    except TypeError as exc:  # arguments it does not take (a TypeError of its code is an EnvError)
        raise EnvError(f"cannot create environment '{env_id}': {exc}") from None
    if isinstance(made, gym.Env):  # a gymnasium env's factory: the gymnasium backend makes it
        with contextlib.suppress(Exception):
            made.close()
        return None
    return made


def _unknown(env_id: str) -> UnknownNameError:
    return UnknownNameError(
        f"unknown environment '{env_id}'" + closest(env_id, [*JAX_ENVS, *gymnasium_ids()])
    )


def gymnasium_factory(env_id: str) -> EnvFactory:
    """A function creating one gymnasium env for `env_id` (a registered id or `module:Class`);
    Atari games come with the standard preprocessing (`bellman.envs.atari`)."""
    if env_id.startswith((JUMANJI, protocol.OBJECT)):
        raise EnvError(
            f"environment '{env_id}' is a JAX env with no gymnasium implementation; it runs on "
            "the compiled backend"
        )
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


def _registered(
    env_id: str, name: str, params: dict[str, Any], kwargs: dict[str, Any]
) -> ResolvedEnv:
    """One of `JAX_ENVS`, with gymnax parameters or jumanji keyword arguments."""
    if params and name not in GYMNAX_IDS:
        raise ConfigError(
            f"env_params change a gymnax env's parameters (CartPole-v1, Pendulum-v1, ...); "
            f"'{env_id}' has none"
        )
    if kwargs and not name.startswith(JUMANJI):
        raise ConfigError(
            f"env_kwargs go to gymnasium.make, a module:attr or jumanji.make; '{env_id}' runs "
            "on the compiled backend"
            + (" (gymnax), whose parameters are env_params" if name in GYMNAX_IDS else "")
            + ": pass --backend gymnasium to make it with gymnasium"
        )
    changes: dict[str, Any] = {}
    if name in GYMNAX_IDS:
        gymnax_env = GymnaxEnv(name, **params)
        env: JaxEnv = gymnax_env
        changes = gymnax_env.changes
    else:
        env = JAX_ENVS[name](**kwargs)
    gym_name = TWINS.get(name, env_id)
    # the gymnasium twin has the default parameters: none when they were changed
    twin = gym_name in gym.registry and not changes
    return ResolvedEnv(
        name,
        "compiled",
        env.spec,
        jax_env=env,
        make_gym=gymnasium_factory(gym_name) if twin else None,
        env_params=options.canonical(changes),
        env_kwargs=options.canonical(kwargs),
    )


def _user_jax(env_id: str, env: Any, params: dict[str, Any], kwargs: dict[str, Any]) -> ResolvedEnv:
    """A user's JAX env (made from `module:attr`, or an object), checked."""
    if params:
        raise ConfigError(
            f"env_params change a gymnax env's parameters; '{env_id}' is your own JAX env: give "
            "it its parameters yourself (env_kwargs reach a function or class that makes it)"
        )
    protocol.check_jax_env(env_id, env)
    return ResolvedEnv(
        env_id, "compiled", env.spec, jax_env=env, env_kwargs=options.canonical(kwargs)
    )


def _object(env: Any, backend: str, params: dict[str, Any], kwargs: dict[str, Any]) -> ResolvedEnv:
    """An env object given from Python, which runs on the compiled backend as it is."""
    label = env_label(env)
    if backend == "gymnasium" and not isinstance(env, gym.Env):
        raise EnvError(
            f"environment '{label}' is an env object, which runs on the compiled backend; "
            "bellman makes gymnasium envs itself, from an id or module:Class"
        )
    if kwargs:
        raise ConfigError(
            f"env_kwargs go to what makes an env from its name; '{label}' is an env object "
            "made already"
        )
    return _user_jax(label, env, params, {})


def resolve(
    env: Any,
    backend: str = "auto",
    env_params: str | None = None,
    env_kwargs: str | None = None,
) -> ResolvedEnv:
    """Resolve `env` for `backend` ('auto', 'compiled' or 'gymnasium'): an env id, `module:attr`,
    or a JAX env object; `env_params` and `env_kwargs` as `bellman.envs.options.parse` reads
    them (`name=value,...`, a JSON object or a JSON file)."""
    if backend not in BACKENDS:
        raise UnknownNameError(f"unknown backend '{backend}'" + closest(backend, BACKENDS))
    params = options.parse(env_params, "env_params") if env_params is not None else {}
    kwargs = options.parse(env_kwargs, "env_kwargs") if env_kwargs is not None else {}
    if not isinstance(env, str):
        return _object(env, backend, params, kwargs)
    env_id = env
    if env_id.startswith(JUMANJI) and env_id not in JAX_ENVS:
        raise _unknown(env_id)
    if env_id.startswith(protocol.OBJECT):
        raise EnvError(
            f"'{env_id}' is how a run records an env object given from Python, which bellman "
            "cannot make from its name: pass the object itself (env=...)"
        )
    name = jax_id(env_id)
    gym_name = TWINS.get(name, env_id)
    if backend in ("auto", "compiled"):
        if name in JAX_ENVS:
            return _registered(env_id, name, params, kwargs)
        if user_module(env_id) is not None:
            made = _user_jax_env(env_id, kwargs)
            if made is not None:
                return _user_jax(env_id, made, params, kwargs)
    if backend == "compiled":
        if gym_name in gym.registry or ":" in gym_name:
            raise EnvError(
                f"environment '{env_id}' has no JAX implementation; "
                "train it with --backend gymnasium"
            )
        raise _unknown(env_id)
    if params:
        raise ConfigError(
            f"env_params change a gymnax env's parameters, on the compiled backend; '{env_id}' "
            "runs on the gymnasium backend, whose envs take env_kwargs"
        )
    factory = gymnasium_factory(gym_name)  # `Maze-v0` on the host backend is `bellman/Maze-v0`
    if kwargs:
        factory = functools.partial(_make_with, factory, kwargs)
    return ResolvedEnv(
        env_id,
        "gymnasium",
        probe_gymnasium(gym_name, factory),
        make_gym=factory,
        env_kwargs=options.canonical(kwargs),
    )


def _make_with(factory: EnvFactory, kwargs: dict[str, Any], **more: Any) -> gym.Env:
    """`factory` called with the run's `env_kwargs` and `more` (a render mode, say)."""
    return factory(**{**kwargs, **more})


def list_envs() -> dict[str, list[str]]:
    """Env ids per backend, for `bellman list envs`; the two-player games apart."""
    single = sorted(env_id for env_id in JAX_ENVS if env_id not in games.GAMES)
    return {"compiled": single, "games": list(games.GAMES), "gymnasium": gymnasium_ids()}


def render_kwargs() -> dict[str, Any]:
    """Keyword arguments that make a gymnasium env render frames off-screen."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    return {"render_mode": "rgb_array"}
