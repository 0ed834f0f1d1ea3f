"""Process-wide JAX settings bellman's speed relies on, applied by `configure()`, never at import.

Importing bellman changes nothing outside bellman. `configure()`, which the `bellman` command,
`bellman.train` and `bellman.resume` call first, sets two XLA flags unless XLA_FLAGS names them:
- `--xla_force_host_platform_device_count=<cores>`: one XLA CPU device per core. XLA runs the
  small matrix products of RL networks on one thread, so a vmapped multi-seed program uses one
  core; the compiled runner shards its seeds over these devices instead (8 CartPole seeds train
  about 1.8x faster on 2 cores). Programs that are not sharded run on the first device as usual.
  XLA reads its flags once, when JAX starts its backend (at the first array or `jax.devices()`),
  so this takes effect only if `configure()` runs before that.
- `--xla_cpu_multi_thread_eigen=false`: keeps those products off XLA's shared intra-op thread
  pool. They ran single-threaded anyway (no measurable change here), and a pool that blocking
  work can exhaust has been reported to deadlock vmapped CPU programs.
and registers:
- Threefry's unrolled CPU lowering: JAX emits the hash's 5 rounds as a rolled loop on CPU, so every
  random draw inside a compiled rollout runs a small while-loop of its own. The unrolled lowering
  (the one JAX uses on GPU) computes the same bits and runs faster here, so the training programs
  use it. Programs whose run time hardly matters (initialisation, evaluation) are lowered inside
  `small_code()`, which keeps JAX's rolled loop: the same bits again, in less code to compile.

`configure(restore=True)` puts XLA_FLAGS and JAX's own threefry lowering back (programs already
compiled keep what they were compiled with, and a started backend keeps its devices).

bellman's cache directory (`cache_root`) holds the compiled programs of
`bellman.runners.programs`, so that a second run of the same configuration neither traces nor
compiles.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bellman.errors import BellmanWarning

_small_code = contextvars.ContextVar("bellman_small_code", default=False)
_lock = threading.Lock()
_undo: dict[str, Callable[[], None]] = {}
"""What `configure()` changed, by name ("XLA_FLAGS", "threefry"), with how to put it back."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure(restore: bool = False) -> None:
    """Apply the process-wide settings bellman's speed relies on (`bellman.jax_setup` says why):
    XLA_FLAGS gains `--xla_force_host_platform_device_count=<cores>` (one CPU device per core,
    over which runs shard their seeds) and `--xla_cpu_multi_thread_eigen=false`, unless it names
    them already, and threefry's unrolled lowering is registered for CPU.

    `bellman.train`, `bellman.resume` and the `bellman` command call it first, and leave it in
    place. A program that computes with JAX before it trains (or loads a policy first) should
    call it before its first JAX computation: XLA reads its flags when JAX starts, and once it
    has started the flags are left alone, with a `bellman.errors.BellmanWarning` on CPU (runs
    still work, with all seeds on one CPU device). Calling it again changes nothing.

    Args:
        restore: put back what earlier calls changed instead: XLA_FLAGS as it was (unless it was
            changed since) and JAX's own threefry lowering. A JAX already started keeps the
            devices it started with, and programs already compiled keep their code.
    """
    with _lock:
        if restore:
            for name in list(_undo):
                _undo.pop(name)()
            return
        if "XLA_FLAGS" not in _undo:
            _undo["XLA_FLAGS"] = _set_xla_flags()
        if "threefry" not in _undo:
            _undo["threefry"] = _unroll_threefry_on_cpu()


def _nothing() -> None:
    pass


def _set_xla_flags() -> Callable[[], None]:
    old = os.environ.get("XLA_FLAGS")
    flags = old or ""
    if "xla_cpu_multi_thread_eigen" not in flags:
        flags += " --xla_cpu_multi_thread_eigen=false"
    if "xla_force_host_platform_device_count" not in flags and usable_cores() > 1:
        flags += f" --xla_force_host_platform_device_count={usable_cores()}"
    flags = flags.strip()
    if flags == (old or "").strip():
        return _nothing
    if _backend_started():
        import jax

        if jax.default_backend() == "cpu":  # an accelerator's runs do not use these flags
            warnings.warn(
                f"JAX started before bellman.configure(), too late for XLA_FLAGS={flags!r}: "
                "seeds share one CPU device instead of one per core (call bellman.configure() "
                "before your first JAX computation)",
                BellmanWarning,
                stacklevel=3,
            )
        return _nothing
    os.environ["XLA_FLAGS"] = flags

    def undo() -> None:
        if os.environ.get("XLA_FLAGS") != flags:  # changed since: not ours to undo
            return
        if old is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = old

    return undo


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # a JAX whose internals moved: set the flags, which may be too late
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started is not None else False


def _unroll_threefry_on_cpu() -> Callable[[], None]:
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
    except ImportError:  # a JAX whose internals moved: keep its own lowering
        return _nothing
    unrolled = getattr(threefry2x32, "_threefry2x32_lowering_rule", None)
    rolled = getattr(threefry2x32, "_threefry2x32_cpu_lowering_rule", None)
    primitive = getattr(threefry2x32, "threefry2x32_p", None)
    if unrolled is None or rolled is None or primitive is None:
        return _nothing
    lowerings = getattr(mlir, "_platform_specific_lowerings", {}).get("cpu", {})
    previous = lowerings.get(primitive)  # JAX's entry (its rule and inline setting), if readable

    def rule(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        return (rolled if _small_code.get() else unrolled)(ctx, *args, **kwargs)

    mlir.register_lowering(primitive, rule, platform="cpu")

    def undo() -> None:
        if previous is None:
            mlir.register_lowering(primitive, rolled, platform="cpu")
        else:
            mlir.register_lowering(primitive, previous.rule, platform="cpu", inline=previous.inline)

    return undo


@contextlib.contextmanager
def small_code() -> Iterator[None]:
    """Lower programs for a small compile rather than a fast run (see the module docstring)."""
    token = _small_code.set(True)
    try:
        yield
    finally:
        _small_code.reset(token)


def cache_root() -> Path | None:
    """bellman's cache: $BELLMAN_CACHE_DIR, else ~/.cache/bellman; None when set to 'off'."""
    value = os.environ.get("BELLMAN_CACHE_DIR")
    if value is not None:
        return None if value.lower() == "off" else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bellman"
