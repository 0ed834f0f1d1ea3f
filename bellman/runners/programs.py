"""Compiled programs: compiled in the background, and kept on disk so that a rerun with the same
settings neither traces nor compiles (the first run of a configuration stores its executables, the
next ones load them).

Compiling is XLA's work in C++, so it runs on a worker thread while the driver traces the next
program or trains: `start` returns a `Program` at once, and calling it waits for the executable.

JAX's own persistent compilation cache skips XLA's compilation but still traces the Python code to
find its key, which for a PPO run is a second or two. This cache is keyed on everything a program
depends on instead: the program's own static description (the
algorithm's config, the env, seeds, chunk length...), the source of the bellman package, the
versions of the libraries it calls, the XLA flags and the devices. Anything unreadable is
treated as a miss: the program is compiled as usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

import bellman
from bellman import jax_setup

MAX_PROGRAMS = 256
PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "numpy")
LIGHT: dict[str, str | bool] = {"xla_backend_optimization_level": "0"}
"""Compiler options for programs whose run time hardly matters (initialisation, evaluation):
without LLVM's optimisations they compile in about half the time and run about 2x slower."""

# One worker: XLA already spreads a compilation over the cores, so two at once only share them;
# queued in order, the program needed first is ready first.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bellman-compile")


@cache
def source_digest() -> str:
    """SHA-256 of the bellman package's Python sources."""
    digest = hashlib.sha256()
    root = Path(bellman.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@cache
def _environment() -> str:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "none"
    return json.dumps(
        {
            "python": sys.version,
            "versions": versions,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "x64": bool(jax.config.read("jax_enable_x64")),
            "source": source_digest(),
        },
        sort_keys=True,
    )


def directory() -> Path | None:
    root = jax_setup.cache_root()
    return None if root is None else root / "programs"


def signature(*args: Any) -> str:
    """The tree structure (static metadata included), shapes and dtypes of a program's inputs:
    part of its key, since an executable only accepts inputs of exactly that form."""
    leaves, treedef = jax.tree.flatten(args)
    shapes = [
        f"{getattr(x, 'dtype', type(x).__name__)}{list(getattr(x, 'shape', ()))}" for x in leaves
    ]
    return f"{treedef} {' '.join(shapes)}"


def key_of(description: Sequence[str], devices: Sequence[Any]) -> str:
    device_names = [f"{d.platform}:{d.device_kind}:{d.id}" for d in devices]
    text = json.dumps([list(description), device_names, _environment()])
    return hashlib.sha256(text.encode()).hexdigest()


def _load(path: Path, devices: Sequence[Any]) -> Any:
    from jax.experimental import serialize_executable

    payload, in_tree, out_tree = pickle.loads(path.read_bytes())
    return serialize_executable.deserialize_and_load(
        payload, in_tree, out_tree, execution_devices=list(devices)
    )


def _store(path: Path, compiled: Any) -> None:
    from jax.experimental import serialize_executable

    blob = pickle.dumps(serialize_executable.serialize(compiled))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    programs = sorted(path.parent.glob("*.bin"), key=lambda p: p.stat().st_mtime)
    for old in programs[:-MAX_PROGRAMS]:
        old.unlink(missing_ok=True)


class Program:
    """An executable that may still be compiling on the worker; using it waits for it."""

    def __init__(self, future: Future[Any]):
        self._future = future
        self.wait_s = 0.0
        """Seconds callers spent waiting for the compilation to finish."""

    @classmethod
    def ready(cls, executable: Any) -> Program:
        future: Future[Any] = Future()
        future.set_result(executable)
        return cls(future)

    def result(self) -> Any:
        """The compiled executable (re-raising the compilation's error, if it failed)."""
        if not self._future.done():
            start = time.perf_counter()
            self._future.result()
            self.wait_s += time.perf_counter() - start
        return self._future.result()

    def __call__(self, *args: Any) -> Any:
        return self.result()(*args)


def _cache_path(
    description: Sequence[str] | None, options: dict[str, str | bool] | None, devices: Sequence[Any]
) -> Path | None:
    folder = directory()
    if (
        description is None
        or folder is None
        or getattr(jax.config, "jax_compilation_cache_dir", None)
    ):
        # With JAX's own persistent cache on (set by the user), a compile may return an
        # executable JAX loaded from it, and such an executable serializes into a file that
        # loads but fails when run ("Function ... not found"): leave caching to JAX then.
        return None
    return folder / f"{key_of([*description, repr(sorted((options or {}).items()))], devices)}.bin"


def _cached(path: Path | None, devices: Sequence[Any]) -> Any:
    """The executable stored at `path`, or None."""
    if path is None or not path.is_file():
        return None
    try:
        compiled = _load(path, devices)
        os.utime(path)
        return compiled
    except Exception:  # a stale or damaged entry: compile instead
        path.unlink(missing_ok=True)
        return None


def _lower(lower: Callable[[], Any], light: bool) -> Any:
    with jax_setup.small_code() if light else contextlib.nullcontext():
        return lower()


def _compile(lowered: Any, options: dict[str, str | bool] | None, path: Path | None) -> Any:
    compiled = lowered.compile(compiler_options=options)
    if path is not None:
        with contextlib.suppress(Exception):  # an unwritable cache costs speed, never the run
            _store(path, compiled)
    return compiled


def start(
    description: Sequence[str] | None,
    lower: Callable[[], Any],
    devices: Sequence[Any],
    light: bool = False,
    trace_on_worker: bool = False,
) -> Program:
    """The program `description` describes, loaded from disk or lowered by `lower()` and compiled
    on the worker (then stored). `description=None` means: do not cache. `light` compiles for a
    small compile rather than a fast run (`LIGHT`, `jax_setup.small_code`). `lower` runs in the
    calling thread unless `trace_on_worker`, which suits a program needed only later."""
    options = LIGHT if light else None
    path = _cache_path(description, options, devices)
    if trace_on_worker:

        def obtain() -> Any:
            cached = _cached(path, devices)
            return cached if cached is not None else _compile(_lower(lower, light), options, path)

        return Program(_WORKER.submit(obtain))
    cached = _cached(path, devices)
    if cached is not None:
        return Program.ready(cached)
    return Program(_WORKER.submit(_compile, _lower(lower, light), options, path))
