"""Process-wide JAX settings bellman relies on for speed.

Set at `import bellman`, before JAX starts its CPU backend, unless XLA_FLAGS already names them:
- `--xla_force_host_platform_device_count=<cores>`: one XLA CPU device per core. XLA runs the
  small matrix products of RL networks on one thread, so a vmapped multi-seed program uses one
  core; the compiled runner shards its seeds over these devices instead (8 CartPole seeds train
  about 1.8x faster on 2 cores). Programs that are not sharded run on the first device as usual.
- `--xla_cpu_multi_thread_eigen=false`: keeps those products off XLA's shared intra-op thread
  pool. They ran single-threaded anyway (no measurable change here), and a pool that blocking
  work can exhaust has been reported to deadlock vmapped CPU programs.
- Threefry's CPU lowering: JAX emits the hash's 5 rounds as a rolled loop on CPU, so every random
  draw inside a compiled rollout runs a small while-loop of its own. The unrolled lowering (the one
  JAX uses on GPU) computes the same bits and runs faster here, so the training programs use it.
  Programs whose run time hardly matters (initialisation, evaluation) are lowered inside
  `small_code()`, which keeps JAX's rolled loop: the same bits again, in less code to compile.

bellman's cache directory (`cache_root`) holds the compiled programs of
`bellman.runners.programs`, so that a second run of the same configuration neither traces nor
compiles.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_done = {"threefry": False}
_small_code = contextvars.ContextVar("bellman_small_code", default=False)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_xla_flags() -> None:
    """Set bellman's XLA flags unless XLA_FLAGS already names them (see the module docstring)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        flags += " --xla_cpu_multi_thread_eigen=false"
    if "xla_force_host_platform_device_count" not in flags and usable_cores() > 1:
        flags += f" --xla_force_host_platform_device_count={usable_cores()}"
    os.environ["XLA_FLAGS"] = flags.strip()


def unroll_threefry_on_cpu() -> None:
    if _done["threefry"]:
        return
    _done["threefry"] = True
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
    except ImportError:  # a JAX whose internals moved: keep its own lowering
        return
    unrolled = getattr(threefry2x32, "_threefry2x32_lowering_rule", None)
    rolled = getattr(threefry2x32, "_threefry2x32_cpu_lowering_rule", None)
    primitive = getattr(threefry2x32, "threefry2x32_p", None)
    if unrolled is None or rolled is None or primitive is None:
        return

    def rule(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        return (rolled if _small_code.get() else unrolled)(ctx, *args, **kwargs)

    mlir.register_lowering(primitive, rule, platform="cpu")


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
