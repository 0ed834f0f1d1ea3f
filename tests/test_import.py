"""`import bellman` changes nothing outside bellman; `bellman.configure()` applies the speed
settings (XLA flags, threefry's unrolled lowering) and puts them back. Each check runs in a fresh
interpreter: JAX reads its flags once per process, and the suite's own process has long started it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_FLAGS = "--xla_cpu_enable_fast_math=false"
"""A flag of the user's own, which bellman must neither drop nor add to at import."""

# Shared by the scripts below: JAX's threefry lowering on CPU, and whether a program drawing
# random bits lowers to a loop (JAX's rolled lowering) or without one (bellman's unrolled one).
THREEFRY = """
import jax, jax.numpy as jnp
from jax._src.interpreters import mlir
from jax._src.random import threefry2x32

def jax_rule():
    entry = mlir._platform_specific_lowerings["cpu"][threefry2x32.threefry2x32_p]
    return entry.rule is threefry2x32._threefry2x32_cpu_lowering_rule

def rolled():
    draw = jax.jit(lambda key: jax.random.bits(key, (4,)))  # a new function: lowered afresh
    return "while" in draw.lower(jax.ShapeDtypeStruct((2,), jnp.uint32)).as_text()
"""


def fresh(code: str, xla_flags: str | None = None) -> Any:
    """Run `code` in a fresh interpreter with XLA_FLAGS as given (None: unset); returns the JSON
    it prints on its last line."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


IMPORT_EVERYTHING = """
import gc, json, os, sys, types
import typing  # registers its deprecated namespaces typing.io and typing.re, not modules

disabled_by = []  # bellman modules that turn the collector off
_disable = gc.disable
def disable():
    caller = sys._getframe(1).f_globals.get("__name__", "")
    if caller.startswith("bellman"):
        disabled_by.append(caller)
    _disable()
gc.disable = disable

gc_before, flags_before = gc.isenabled(), os.environ.get("XLA_FLAGS")
modules_before = dict(sys.modules)
from jax._src import xla_bridge
from jax._src.interpreters import mlir

def lowerings():
    rules = {("any", repr(p)): e.rule for p, e in mlir._lowerings.items()}
    for platform, table in mlir._platform_specific_lowerings.items():
        rules.update({(platform, repr(p)): e.rule for p, e in table.items()})
    return rules

lowerings_before = lowerings()

import importlib, pkgutil
import bellman
skipped = []
for info in pkgutil.walk_packages(bellman.__path__, "bellman."):
    if info.name != "bellman.__main__":  # runs the command line
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional dependency (an env family's) not installed
            skipped.append(info.name)
backend_started = xla_bridge.backends_are_initialized()
import bellman.envs.gymnax_env
bellman.envs.gymnax_env.import_gymnax()

def origin(rule):
    return getattr(getattr(rule, "func", rule), "__module__", None) or ""

after = lowerings()
print(json.dumps({
    "gc": [gc_before, gc.isenabled()],
    "disabled_by": disabled_by,
    "flags": [flags_before, os.environ.get("XLA_FLAGS")],
    "backend_started": backend_started,
    "not_modules": sorted(
        name for name, m in sys.modules.items()
        if name not in modules_before and not isinstance(m, types.ModuleType)
    ),
    "bellman_made": sorted(
        name for name, m in sys.modules.items() if type(m).__module__.startswith("bellman")
    ),
    "lowerings_replaced": sorted(str(k) for k, r in lowerings_before.items() if after[k] is not r),
    "lowerings_by_bellman": sorted(str(k) for k, r in after.items() if "bellman" in origin(r)),
    "imported": sum(name.startswith("bellman.") for name in sys.modules),
    "skipped": skipped,
}))
"""


@pytest.mark.parametrize("xla_flags", [None, USER_FLAGS])
def test_importing_bellman_changes_nothing_process_wide(xla_flags: str | None) -> None:
    found = fresh(IMPORT_EVERYTHING, xla_flags)
    assert found["imported"] > 40, found["skipped"]
    assert found["gc"] == [True, True] and not found["disabled_by"]
    assert found["flags"] == [xla_flags, xla_flags]
    assert not found["backend_started"], "configure() must be able to run after the imports"
    assert not found["lowerings_replaced"] and not found["lowerings_by_bellman"]
    assert not found["not_modules"] and not found["bellman_made"], "no stand-ins left behind"


def test_gymnax_is_imported_without_its_plotting_modules_which_load_on_first_use() -> None:
    found = fresh("""
        import json, sys, types
        import bellman, bellman.cli
        from bellman.envs.gymnax_env import import_gymnax

        gymnax = import_gymnax()
        absent = [name not in sys.modules for name in ("seaborn", "matplotlib.pyplot")]
        again = import_gymnax() is gymnax
        from gymnax.environments.misc import pong

        figure = pong.plt.figure  # gymnax's `plt`, used: imports the real pyplot
        import matplotlib.pyplot
        print(json.dumps({
            "absent": absent,
            "again": again,
            "real": type(sys.modules["matplotlib.pyplot"]) is types.ModuleType,
            "same": figure is matplotlib.pyplot.figure,
        }))
    """)
    assert found == {"absent": [True, True], "again": True, "real": True, "same": True}


def test_plotting_modules_imported_before_gymnax_stay_the_real_ones() -> None:
    found = fresh("""
        import json, sys
        import seaborn
        from bellman.envs.gymnax_env import import_gymnax

        import_gymnax()
        from gymnax.environments.misc import pong

        print(json.dumps([pong.sns is seaborn, sys.modules["seaborn"] is seaborn]))
    """)
    assert found == [True, True]


CONFIGURE = (
    THREEFRY
    + """
import json, os
import bellman
from bellman import jax_setup

def state():
    return [os.environ.get("XLA_FLAGS"), jax_rule()]

original = state()
bellman.configure()
configured = state()
bellman.configure()
idempotent = state() == configured
bellman.configure(restore=True)
restored = state()

bellman.configure()
os.environ["XLA_FLAGS"] = "--xla_cpu_enable_fast_math=true"  # the user's change, after configure
bellman.configure(restore=True)
kept = os.environ["XLA_FLAGS"]
if original[0] is None:
    del os.environ["XLA_FLAGS"]
else:
    os.environ["XLA_FLAGS"] = original[0]

bellman.configure()
devices = len(jax.devices("cpu"))  # starts JAX with the flags
unrolled = not rolled()
bellman.configure(restore=True)
print(json.dumps({
    "original": original, "configured": configured, "idempotent": idempotent,
    "restored": restored, "kept": kept, "devices": devices, "cores": jax_setup.usable_cores(),
    "unrolled": unrolled, "rolled_after": rolled(), "end": state(),
}))
"""
)


@pytest.mark.parametrize("xla_flags", [None, USER_FLAGS])
def test_configure_applies_the_flags_and_lowering_and_restore_puts_them_back(
    xla_flags: str | None,
) -> None:
    found = fresh(CONFIGURE, xla_flags)
    assert found["original"] == [xla_flags, True]
    flags, jax_rule = found["configured"]
    assert not jax_rule and flags.startswith(xla_flags or "--")
    assert "--xla_cpu_multi_thread_eigen=false" in flags
    if found["cores"] > 1:
        assert f"--xla_force_host_platform_device_count={found['cores']}" in flags
    assert found["idempotent"]
    assert found["restored"] == found["original"] == found["end"]
    assert found["kept"] == "--xla_cpu_enable_fast_math=true", "a later change is not undone"
    assert found["devices"] == found["cores"]
    assert found["unrolled"] and found["rolled_after"]


@pytest.mark.parametrize("entry", ["command", "train"])
def test_the_command_and_train_configure_before_jax_starts(entry: str, tmp_path: Path) -> None:
    start = {
        "command": "bellman.cli.main(['list', 'algos'])",
        "train": f"""bellman.train(
            "ppo", env="probe/ObsAction-v0", steps=1024, seeds=2, out={str(tmp_path)!r},
            progress=False, evals=0, eval_episodes=2, num_envs=4, num_steps=16,
        )""",
    }[entry]
    found = fresh(
        THREEFRY
        + f"""
import json, os, warnings
import bellman, bellman.cli
from bellman import jax_setup
from bellman.errors import BellmanWarning

warnings.simplefilter("error", BellmanWarning)  # no "JAX started too early"
{start}
print(json.dumps([len(jax.devices("cpu")), jax_setup.usable_cores(), jax_rule()]))
"""
    )
    assert found[0] == found[1] and not found[2]


def test_configure_after_jax_started_warns_once_and_training_still_works(tmp_path: Path) -> None:
    found = fresh(
        THREEFRY
        + f"""
import json, os, warnings
jnp.zeros(1).block_until_ready()  # the program computes with JAX before it trains
import bellman
from bellman.errors import BellmanWarning

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    runs = [
        bellman.train(
            "ppo", env="probe/ObsAction-v0", steps=1024, seeds=2, out={str(tmp_path)!r} + f"/{{i}}",
            progress=False, evals=0, eval_episodes=2, num_envs=4, num_steps=16,
        )
        for i in range(2)
    ]
print(json.dumps({{
    "warnings": [
        str(w.message) for w in caught
        if issubclass(w.category, BellmanWarning) and "XLA_FLAGS" in str(w.message)
    ],
    "flags": os.environ.get("XLA_FLAGS"),
    "devices": len(jax.devices("cpu")),
    "steps": [run.metrics[-1]["step"] for run in runs],
    "unrolled": not rolled(),
}}))
"""
    )
    assert len(found["warnings"]) == 1 and "bellman.configure()" in found["warnings"][0]
    assert found["flags"] is None and found["devices"] == 1
    assert found["steps"] == [1024, 1024]
    assert found["unrolled"], "the lowering does not depend on JAX's start"


def test_bellman_envs_are_registered_with_gymnasium_by_import_alone() -> None:
    found = fresh("""
        import json
        import gymnasium
        import bellman

        env = gymnasium.make("bellman/Maze-v0")
        observation, _ = env.reset(seed=0)
        step = env.step(env.action_space.sample())
        print(json.dumps([env.spec.id, len(step)]))
    """)
    assert found == ["bellman/Maze-v0", 5]


def test_no_bellman_module_imports_the_package_itself() -> None:
    """Modules read what they need from submodules (`bellman._version`, `bellman.jax_setup`):
    importing `bellman` itself from inside would tie every module to the public API's imports."""
    package = ROOT / "bellman"
    submodules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").exists()
    }
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [where for alias in node.names if alias.name == "bellman"]
            elif isinstance(node, ast.ImportFrom) and node.module == "bellman" and not node.level:
                found += [where for alias in node.names if alias.name not in submodules]
    assert not found
