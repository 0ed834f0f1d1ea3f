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

Trust model: loading a stored program unpickles it and runs the machine code in it, so a file in
the cache can run any code it likes. Each file is therefore `MAGIC`, an HMAC-SHA256 tag, then the
pickled executable; the tag covers the file's name (the program's key) and the pickle, under a
secret of 32 random bytes kept outside the cache folder (`key_file()`), made on first use with
mode 0600. Only someone who can read that file (you, or root) can make a file this cache will
load, and nothing is unpickled before its tag checks out: a planted, damaged, renamed or
old-format file is a miss, deleted, compiled and stored anew. The cache is not used at all (one
warning on stderr; the run only loses speed) when the cache folders could be written by other
users or the key file could be read by them (`_folder_problem`, `_secret`), nor where there are
no POSIX owners and modes to check.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pickle
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

from bellman import jax_setup

MAX_PROGRAMS = 256
PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "numpy")
LIGHT: dict[str, str | bool] = {"xla_backend_optimization_level": "0"}
"""Compiler options for programs whose run time hardly matters (initialisation, evaluation):
without LLVM's optimisations they compile in about half the time and run about 2x slower."""
MAGIC = b"bellman compiled program v1\n"
"""The first line of every cache file (files without it, such as older ones, are misses)."""
KEY_BYTES = 32
TAG_BYTES = hashlib.sha256().digest_size

# One worker: XLA already spreads a compilation over the cores, so two at once only share them;
# queued in order, the program needed first is ready first.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bellman-compile")
_warned: set[str] = set()
_warned_lock = threading.Lock()


@cache
def source_digest() -> str:
    """SHA-256 of the bellman package's Python sources."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]  # the bellman package
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
    """The folder programs are kept in (whether or not it is safe to use); None when the cache
    is off (BELLMAN_CACHE_DIR=off)."""
    root = jax_setup.cache_root()
    return None if root is None else root / "programs"


def key_file() -> Path:
    """The secret that authenticates cache files: $BELLMAN_CACHE_KEY_FILE, else
    $XDG_CONFIG_HOME/bellman/cache-key, else ~/.config/bellman/cache-key. It lives outside the
    cache folder, so that a planted or copied cache folder cannot bring a valid key with it."""
    value = os.environ.get("BELLMAN_CACHE_KEY_FILE")
    if value:
        return Path(value)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bellman" / "cache-key"


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


def _warn(problem: str) -> None:
    """`bellman: warning: PROBLEM` on stderr, once per process."""
    with _warned_lock:
        if problem in _warned:
            return
        _warned.add(problem)
    print(f"bellman: warning: {problem}", file=sys.stderr)


def _folder_problem(path: Path) -> str | None:
    """Why the existing folder `path` is unsafe to cache programs in, or None: it must be a
    folder (a symbolic link's target is checked) that belongs to this user, who alone may write
    it, since whoever can write it can replace the programs this user runs."""
    status = os.stat(path)
    if not stat.S_ISDIR(status.st_mode):
        return "it is not a folder"
    if status.st_uid != os.getuid():
        return "it belongs to another user"
    if status.st_mode & 0o022:
        return f"it is writable by other users (chmod go-w {path} to use it)"
    return None


def _usable_folder(create: bool) -> Path | None:
    """The programs folder if the cache root and it are safe to use (those that exist, or both,
    made with mode 0700, when `create`); else None, after a warning."""
    folder = directory()
    if folder is None or os.name != "posix":  # no owners or modes to check elsewhere: no cache
        return None
    try:
        if create:
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        for path in (folder.parent, folder):
            if not os.path.lexists(path):
                continue
            problem = _folder_problem(path)
            if problem is not None:
                _warn(f"not using the program cache {path}: {problem}")
                return None
    except OSError:  # an unreadable or uncreatable cache costs speed, never the run
        return None
    return folder


def _create_key(path: Path) -> None:
    """Write a new random key to `path` unless another process makes it first. The key goes to
    a private file of its own and is then linked into place, so no reader sees half a key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its key
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _secret() -> bytes | None:
    """The key of `key_file()`, made on first use; None (do not cache) when it cannot be read or
    made, or when it is not a 32-byte regular file that belongs to this user and only they may
    read or write (a key others can read lets them make files this cache would load)."""
    path = key_file()
    try:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            _create_key(path)
            fd = os.open(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as file:
            status = os.fstat(file.fileno())
            key = file.read(KEY_BYTES + 1) if stat.S_ISREG(status.st_mode) else b""
    except OSError:  # an unreadable or uncreatable key costs speed, never the run
        return None
    if status.st_uid != os.getuid() or status.st_mode & 0o077 or len(key) != KEY_BYTES:
        _warn(
            f"not using the program cache: its key file {path} must be a {KEY_BYTES}-byte file"
            f" that only you can read and write (delete it to have a new one made)"
        )
        return None
    return key


@dataclass(frozen=True)
class _Entry:
    """Where one program is stored, in a folder checked safe, and the key its file is signed
    with."""

    path: Path
    secret: bytes


def _tag(entry: _Entry, blob: bytes | memoryview) -> bytes:
    """The HMAC-SHA256 of the file's name and pickled contents: an authentic file renamed to
    stand in for another program fails the check under its new name."""
    mac = hmac.new(entry.secret, digestmod=hashlib.sha256)
    mac.update(MAGIC)
    mac.update(entry.path.name.encode())
    mac.update(b"\0")
    mac.update(blob)
    return mac.digest()


def _authentic(entry: _Entry) -> memoryview | None:
    """The pickle stored at `entry.path` if its magic line and tag check out, else None."""
    data = memoryview(entry.path.read_bytes())
    start = len(MAGIC) + TAG_BYTES
    if len(data) < start or data[: len(MAGIC)] != MAGIC:
        return None
    blob = data[start:]
    return blob if hmac.compare_digest(data[len(MAGIC) : start], _tag(entry, blob)) else None


def _load(blob: memoryview, devices: Sequence[Any]) -> Any:
    from jax.experimental import serialize_executable

    _initialize_cpu_kernels()
    payload, in_tree, out_tree = pickle.loads(blob)
    return serialize_executable.deserialize_and_load(
        payload, in_tree, out_tree, execution_devices=list(devices)
    )


def _initialize_cpu_kernels() -> None:
    """Initialise the CPU's LAPACK kernels (eigh, Cholesky, ...; CMA-ES's eigendecomposition
    uses them) before an executable is loaded. JAX initialises them when it lowers a program
    that calls one; a program loaded from the cache is not lowered, and its first call into an
    uninitialised kernel crashes the process (SIGSEGV). JAX's own loader of exported programs
    does the same (`jax._src.export._export._ensure_backends_initialized`)."""
    from jax._src.lax import linalg

    linalg.initialize_lapack()


def _store(entry: _Entry, compiled: Any) -> None:
    from jax.experimental import serialize_executable

    blob = pickle.dumps(serialize_executable.serialize(compiled))
    folder = _usable_folder(create=True)
    if folder != entry.path.parent:
        return
    tmp = folder / f".{entry.path.name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(MAGIC + _tag(entry, blob))
            file.write(blob)
        os.replace(tmp, entry.path)
    finally:
        tmp.unlink(missing_ok=True)
    programs = sorted(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime)
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


def _entry(
    description: Sequence[str] | None, options: dict[str, str | bool] | None, devices: Sequence[Any]
) -> _Entry | None:
    if (
        description is None
        or directory() is None
        or getattr(jax.config, "jax_compilation_cache_dir", None)
    ):
        # With JAX's own persistent cache on (set by the user), a compile may return an
        # executable JAX loaded from it, and such an executable serializes into a file that
        # loads but fails when run ("Function ... not found"): leave caching to JAX then.
        return None
    folder = _usable_folder(create=False)
    secret = None if folder is None else _secret()
    if folder is None or secret is None:
        return None
    key = key_of([*description, repr(sorted((options or {}).items()))], devices)
    return _Entry(folder / f"{key}.bin", secret)


def _cached(entry: _Entry | None, devices: Sequence[Any]) -> Any:
    """The executable stored for `entry`, or None. A file that is not authentic is never
    unpickled; it, or a stale one (another jaxlib...), is deleted: the folder is ours."""
    if entry is None or not entry.path.is_file():
        return None
    try:
        blob = _authentic(entry)
        compiled = None if blob is None else _load(blob, devices)
    except Exception:  # an unreadable or stale entry: compile instead
        compiled = None
    with contextlib.suppress(OSError):
        if compiled is None:
            entry.path.unlink(missing_ok=True)
        else:
            os.utime(entry.path)
    return compiled


def _lower(lower: Callable[[], Any], light: bool) -> Any:
    with jax_setup.small_code() if light else contextlib.nullcontext():
        return lower()


def _compile(lowered: Any, options: dict[str, str | bool] | None, entry: _Entry | None) -> Any:
    compiled = lowered.compile(compiler_options=options)
    if entry is not None:
        with contextlib.suppress(Exception):  # an unwritable cache costs speed, never the run
            _store(entry, compiled)
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
    entry = _entry(description, options, devices)
    if trace_on_worker:

        def obtain() -> Any:
            cached = _cached(entry, devices)
            return cached if cached is not None else _compile(_lower(lower, light), options, entry)

        return Program(_WORKER.submit(obtain))
    cached = _cached(entry, devices)
    if cached is not None:
        return Program.ready(cached)
    return Program(_WORKER.submit(_compile, _lower(lower, light), options, entry))
