"""The program cache never runs code from a file it did not write: every file is authenticated
before it is unpickled, and a cache folder or key file other users could change is not used."""

from __future__ import annotations

import hmac
import os
import pickle
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest

from bellman.runners import programs

X = np.arange(3, dtype=np.float32)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache folder (not made yet) and key file of this test's own; warnings not yet given."""
    monkeypatch.setenv("BELLMAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BELLMAN_CACHE_KEY_FILE", str(tmp_path / "config" / "cache-key"))
    monkeypatch.setattr(programs, "_warned", set(), raising=False)
    return tmp_path / "cache"


def times(factor: float) -> Callable[[], jax.stages.Lowered]:
    fn = jax.jit(lambda x: x * factor)
    return lambda: fn.lower(X)


def run(name: str, factor: float, **kwargs: bool) -> np.ndarray:
    """Start (load or compile) the program `name`, which multiplies by `factor`, and run it."""
    program = programs.start([name], times(factor), jax.devices()[:1], **kwargs)
    return np.asarray(program(X))


def stored_path(name: str) -> Path:
    """The file the cache reads and writes for the program `name` (with default options)."""
    folder = programs.directory()
    assert folder is not None
    return folder / f"{programs.key_of([name, repr([])], jax.devices()[:1])}.bin"


def make_folders(cache: Path) -> None:
    cache.mkdir(mode=0o700)
    (cache / "programs").mkdir(mode=0o700)


class Planted:
    """Unpickling this touches `marker`: a stand-in for whatever code a planted file could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[Path]]:
        return Path.touch, (self.marker,)


def record_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes the cache unpickles from now on (it should unpickle only authentic files)."""
    unpickled: list[bytes] = []
    loads = pickle.loads

    def recording_loads(data: bytes, **kwargs: object) -> object:
        unpickled.append(bytes(data))
        return loads(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(programs.pickle, "loads", recording_loads)
    return unpickled


def is_authentic(path: Path) -> bool:
    """Whether `path` holds MAGIC, then the HMAC-SHA256 of MAGIC, its name, a zero byte and the
    pickle under the key, then the pickle."""
    key = Path(os.environ["BELLMAN_CACHE_KEY_FILE"]).read_bytes()
    data = path.read_bytes()
    start = len(programs.MAGIC) + 32
    tag = hmac.new(key, programs.MAGIC + path.name.encode() + b"\0" + data[start:], "sha256")
    return data[: len(programs.MAGIC)] == programs.MAGIC and data[len(programs.MAGIC) : start] == (
        tag.digest()
    )


def test_a_planted_pickle_is_not_run_and_is_replaced(cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    make_folders(cache)
    stored_path("double").write_bytes(pickle.dumps(Planted(marker)))

    np.testing.assert_array_equal(run("double", 2), 2 * X)
    assert not marker.exists(), "the planted pickle ran"
    assert is_authentic(stored_path("double"))


def plant_wrong_tag(cache: Path, tmp_path: Path) -> None:
    make_folders(cache)
    blob = pickle.dumps(Planted(tmp_path / "marker"))
    stored_path("double").write_bytes(programs.MAGIC + bytes(programs.TAG_BYTES) + blob)


def truncate(cache: Path, tmp_path: Path) -> None:
    run("double", 2)
    path = stored_path("double")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def rename_another_program(cache: Path, tmp_path: Path) -> None:
    run("triple", 3)  # an authentic file, but for another program: the wrong answer if loaded
    stored_path("triple").rename(stored_path("double"))


def sign_with_another_key(cache: Path, tmp_path: Path) -> None:
    run("double", 2)
    os.environ["BELLMAN_CACHE_KEY_FILE"] = str(tmp_path / "another-key")  # undone by monkeypatch


@pytest.mark.parametrize(
    "tamper", [plant_wrong_tag, truncate, rename_another_program, sign_with_another_key]
)
def test_a_file_that_does_not_verify_is_a_miss_and_never_unpickled(
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[Path, Path], None],
) -> None:
    tamper(cache, tmp_path)
    unpickled = record_unpickling(monkeypatch)

    np.testing.assert_array_equal(run("double", 2), 2 * X)
    assert not unpickled, "bytes that did not verify were unpickled"
    assert not (tmp_path / "marker").exists()
    assert is_authentic(stored_path("double")), "the file is replaced by an authentic one"


@pytest.mark.parametrize("trace_on_worker", [False, True])
def test_a_stored_program_is_loaded_not_lowered(
    cache: Path, monkeypatch: pytest.MonkeyPatch, trace_on_worker: bool
) -> None:
    expected = run("double", 2, trace_on_worker=trace_on_worker)
    assert is_authentic(stored_path("double"))
    unpickled = record_unpickling(monkeypatch)

    lowered: list[int] = []
    program = programs.start(
        ["double"], lambda: lowered.append(1), jax.devices()[:1], trace_on_worker=trace_on_worker
    )
    np.testing.assert_array_equal(np.asarray(program(X)), expected)
    assert not lowered, "a stored program is loaded, not lowered"
    assert len(unpickled) == 1


@pytest.mark.parametrize(
    "folder, mode", [("", 0o777), ("programs", 0o770)], ids=["root-0777", "programs-0770"]
)
def test_a_folder_others_can_write_is_not_used(
    cache: Path, capsys: pytest.CaptureFixture[str], folder: str, mode: int
) -> None:
    make_folders(cache)
    (cache / folder).chmod(mode)

    for name in ["double", "double", "again"]:
        np.testing.assert_array_equal(run(name, 2), 2 * X)
    assert not list((cache / "programs").iterdir())
    err = capsys.readouterr().err
    assert err.count("bellman: warning:") == 1, "one warning per process"
    assert f"chmod go-w {cache / folder}" in err


@pytest.mark.skipif(
    os.name != "posix" or os.getuid() != 0, reason="giving a folder away needs root"
)
def test_a_folder_of_another_user_is_not_used(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_folders(cache)
    os.chown(cache, 65534, -1)

    np.testing.assert_array_equal(run("double", 2), 2 * X)
    assert not list((cache / "programs").iterdir())
    assert "belongs to another user" in capsys.readouterr().err


@pytest.mark.parametrize(
    "size, mode", [(32, 0o644), (32, 0o620), (16, 0o600)], ids=["0644", "0620", "16-bytes"]
)
def test_a_key_others_can_read_or_of_the_wrong_size_is_not_used(
    cache: Path, capsys: pytest.CaptureFixture[str], size: int, mode: int
) -> None:
    key = Path(os.environ["BELLMAN_CACHE_KEY_FILE"])
    key.parent.mkdir(mode=0o700)
    key.write_bytes(secrets.token_bytes(size))
    key.chmod(mode)
    before = key.read_bytes()

    for _ in range(2):
        np.testing.assert_array_equal(run("double", 2), 2 * X)
    assert not (cache / "programs").exists() or not list((cache / "programs").iterdir())
    assert key.read_bytes() == before, "the key file is the user's to fix"
    err = capsys.readouterr().err
    assert err.count("bellman: warning:") == 1 and str(key) in err


def test_the_key_and_folders_are_made_private_on_first_use(cache: Path) -> None:
    run("double", 2)
    key = Path(os.environ["BELLMAN_CACHE_KEY_FILE"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == 32
    assert list(key.parent.iterdir()) == [key], "no temporary file is left behind"
    for folder in [key.parent, cache, cache / "programs"]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder

    made = key.read_bytes()
    run("triple", 3)
    programs._create_key(key)  # a creator that loses the race keeps the winner's key
    assert key.read_bytes() == made


def test_a_cache_turned_off_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BELLMAN_CACHE_DIR", "off")
    monkeypatch.setenv("BELLMAN_CACHE_KEY_FILE", str(tmp_path / "cache-key"))

    np.testing.assert_array_equal(run("double", 2), 2 * X)
    assert not list(tmp_path.iterdir())


EIGH = """
import sys
import jax, jax.numpy as jnp, numpy as np
from bellman.runners import programs
x = np.diag(np.arange(1, 4, dtype=np.float32))
fn = jax.jit(lambda a: jnp.linalg.eigh(a)[0])
lower = (lambda: fn.lower(x)) if sys.argv[1] == "store" else (lambda: sys.exit("lowered"))
print(np.asarray(programs.start(["eigh"], lower, jax.devices()[:1])(x)).tolist())
"""


def test_a_stored_program_calling_lapack_runs_in_a_fresh_process(tmp_path: Path) -> None:
    """A program that calls a LAPACK kernel (CMA-ES's eigh), loaded from the cache by a process
    that never lowered one, runs: the kernels are initialised before loading (without that, the
    loading process died of SIGSEGV, checked when this test was written)."""
    env = {
        **os.environ,
        "BELLMAN_CACHE_DIR": str(tmp_path / "cache"),
        "BELLMAN_CACHE_KEY_FILE": str(tmp_path / "config" / "cache-key"),
    }
    run_eigh = lambda *args: subprocess.run(
        [sys.executable, "-c", EIGH, *args], env=env, capture_output=True, text=True
    )
    stored = run_eigh("store")
    assert stored.returncode == 0, stored.stderr
    loaded = run_eigh("load")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["[1.0,", "2.0,", "3.0]"]
