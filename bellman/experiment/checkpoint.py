"""Checkpoints: named pytrees written atomically under one checksum, read back against a template.

File layout:

    MAGIC                      b"BELLMAN-CHECKPOINT 3\\n"
    header length              8 bytes, little-endian
    SHA-256                    32 bytes, of the header length, the header and the payload
    header                     JSON: metadata; per part, its tree structure and its arrays'
                               dtypes, shapes and offsets; the payload's length
    payload                    the arrays' raw bytes, one after the other

The checksum covers everything after it, so one changed digit of an offset is as detectable as a
flipped payload byte. Arrays are written and hashed one at a time, so a checkpoint of a replay
memory of several gigabytes needs no second copy of it in memory. A write goes to a temporary file
that is fsynced and renamed over the target, so a run killed mid-write (or a full disk) leaves the
previous checkpoint intact. Reading verifies the checksum, then the header's layout (offsets
inside the payload, plain numeric dtypes), then the structure against the run's own template: a
checkpoint is data, and nothing in it is executed or imported.

`load_newest` falls back from a damaged newest checkpoint to the newest intact one and says which
it skipped and why; the skipped files are left for the caller to keep (never deleted here).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import jax
import jax.numpy as jnp
import numpy as np

from bellman.errors import CheckpointError

MAGIC = b"BELLMAN-CHECKPOINT 3\n"
_NAME = re.compile(r"^update_(\d{9})\.ckpt$")
_CHUNK = 1 << 24
_DIGEST = 32
_LENGTH = 8
_DTYPE_KINDS = "biufc"  # bool, signed, unsigned, float, complex: arrays of plain numbers


class DamagedCheckpoint(CheckpointError):
    """A checkpoint file that is truncated, altered or not a checkpoint at all."""


def path_for(directory: Path, update: int) -> Path:
    return directory / f"update_{update:09d}.ckpt"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _layout(parts: dict[str, Any]) -> tuple[dict[str, Any], list[Any], int]:
    """Each part's tree structure and array entries, the arrays in order, the payload's bytes."""
    layout: dict[str, Any] = {}
    arrays: list[Any] = []
    offset = 0
    for name, tree in parts.items():
        leaves, treedef = jax.tree.flatten(tree)
        entries = []
        for leaf in leaves:
            shape = tuple(int(d) for d in np.shape(leaf))
            dtype = np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype))
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            entries.append({"dtype": dtype.str, "shape": shape, "offset": offset})
            arrays.append(leaf)
            offset += nbytes
        layout[name] = {"treedef": str(treedef), "leaves": entries}
    return layout, arrays, offset


def save(path: Path, parts: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write `parts` (name -> pytree) and `meta` (JSON-able) to `path` atomically.

    An OSError (a full disk, no permission) leaves no temporary file behind and `path`, if it
    existed, untouched; it propagates for the caller to report.
    """
    layout, arrays, payload_bytes = _layout(parts)
    header = json.dumps({**meta, "parts": layout, "payload_bytes": payload_bytes}).encode()
    length = len(header).to_bytes(_LENGTH, "little")
    digest = hashlib.sha256(length + header)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + length + b"\0" * _DIGEST + header)
            for leaf in arrays:
                data = np.ascontiguousarray(jax.device_get(leaf)).reshape(-1).view(np.uint8)
                for start in range(0, data.size, _CHUNK):
                    piece = data[start : start + _CHUNK].tobytes()
                    digest.update(piece)
                    f.write(piece)
                del data
            f.seek(len(MAGIC) + _LENGTH)
            f.write(digest.digest())  # written last: a file cut off before this fails its check
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _check_layout(meta: Any, payload_bytes: int) -> str | None:
    """What is wrong with a checksummed header's layout, or None. A checksum catches damage, not
    a file made to pass it: offsets and dtypes are checked before anything is read by them."""
    if not isinstance(meta, dict) or not isinstance(meta.get("parts"), dict):
        return "it has no parts"
    for part in meta["parts"].values():
        if not isinstance(part, dict) or not isinstance(part.get("leaves"), list):
            return "a part has no arrays"
        if not isinstance(part.get("treedef"), str):
            return "a part has no tree structure"
        for entry in part["leaves"]:
            try:
                dtype = np.dtype(entry["dtype"])
                shape = [int(d) for d in entry["shape"]]
                offset = int(entry["offset"])
            except (KeyError, TypeError, ValueError):
                return "an array entry does not parse"
            if dtype.kind not in _DTYPE_KINDS or dtype.hasobject:
                return f"an array has dtype {dtype}, not a plain number type"
            if any(d < 0 for d in shape) or offset < 0:
                return "an array has a negative shape or offset"
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if offset + nbytes > payload_bytes:
                return f"an array at offset {offset} runs past the payload's {payload_bytes} bytes"
    return None


def _open(path: Path) -> tuple[BinaryIO, dict[str, Any], int]:
    """The file, its header and where the payload starts, after verifying the checksum over the
    header and the payload and the header's layout."""
    bad = f"checkpoint {path} is damaged"
    try:
        f = open(path, "rb")  # noqa: SIM115 (handed to the caller)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        if f.read(len(MAGIC)) != MAGIC:
            raise DamagedCheckpoint(f"{bad} (it does not start like a bellman checkpoint)")
        length = f.read(_LENGTH)
        wanted = f.read(_DIGEST)
        if len(length) < _LENGTH or len(wanted) < _DIGEST:
            raise DamagedCheckpoint(f"{bad} (it is cut off in its header)")
        header_len = int.from_bytes(length, "little")
        size = os.fstat(f.fileno()).st_size
        start = len(MAGIC) + _LENGTH + _DIGEST + header_len
        if start > size:
            raise DamagedCheckpoint(f"{bad} (it is cut off in its header)")
        digest = hashlib.sha256(length)
        header = f.read(header_len)
        digest.update(header)
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
        if digest.digest() != wanted:
            raise DamagedCheckpoint(f"{bad} (its checksum does not match: truncated or altered)")
        try:
            meta = json.loads(header)
            payload_bytes = int(meta["payload_bytes"])
        except (ValueError, KeyError, TypeError):
            raise DamagedCheckpoint(f"{bad} (its header does not parse)") from None
        if payload_bytes != size - start:
            raise DamagedCheckpoint(f"{bad} ({size - start} of {payload_bytes} payload bytes)")
        problem = _check_layout(meta, payload_bytes)
        if problem is not None:
            raise DamagedCheckpoint(f"{bad} (its header is malformed: {problem})")
        return f, meta, start
    except BaseException:
        f.close()
        raise


def _array(f: BinaryIO, start: int, entry: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(entry["dtype"])
    shape = tuple(int(d) for d in entry["shape"])
    f.seek(start + int(entry["offset"]))
    count = int(np.prod(shape, dtype=np.int64))
    return np.fromfile(f, dtype=dtype, count=count).reshape(shape)


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint, after verifying its checksum."""
    f, meta, _ = _open(path)
    f.close()
    return {k: v for k, v in meta.items() if k not in ("parts", "payload_bytes")}


def load(
    path: Path, templates: dict[str, Any], restructure: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the parts named in `templates` (pytrees of arrays or ShapeDtypeStructs).

    `restructure` takes the template's tree structure when only its static metadata differs
    from the stored one (the same arrays, in the same order, of the same shapes and dtypes): a
    run continued for more updates, whose states record their planned number of updates."""
    f, meta, start = _open(path)
    with f:
        stored = meta.pop("parts")
        meta.pop("payload_bytes")
        parts = {}
        for name, template in templates.items():
            leaves_t, treedef = jax.tree.flatten(template)
            entries = stored.get(name, {}).get("leaves", [])
            same_tree = restructure or stored.get(name, {}).get("treedef") == str(treedef)
            if not same_tree or len(entries) != len(leaves_t):
                raise CheckpointError(
                    f"checkpoint {path} does not match this run's settings (its '{name}' state "
                    "has another structure)"
                )
            leaves = []
            for entry, want in zip(entries, leaves_t, strict=True):
                shape, dtype = tuple(entry["shape"]), np.dtype(entry["dtype"])
                if shape != tuple(want.shape) or dtype != want.dtype:
                    raise CheckpointError(
                        f"checkpoint {path} does not match this run's settings (an array of "
                        f"shape {shape} {dtype} where {tuple(want.shape)} {want.dtype} is "
                        "expected)"
                    )
                leaves.append(jax.numpy.asarray(_array(f, start, entry)))
            parts[name] = jax.tree.unflatten(treedef, leaves)
    return parts, meta


def read_arrays(path: Path) -> dict[str, list[np.ndarray]]:
    """Every array of every part, in tree order, without a template (to compare checkpoints)."""
    f, meta, start = _open(path)
    with f:
        return {
            name: [_array(f, start, entry) for entry in part["leaves"]]
            for name, part in meta["parts"].items()
        }


@jax.jit
def _finite_per_seed(tree: Any) -> jax.Array:
    """Per index of the leading (seed) axis: whether every float of every leaf is finite."""
    checks = [
        jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.inexact) and x.ndim >= 1
    ]
    if not checks:
        return jnp.ones((), bool)
    return jnp.stack(checks).all(axis=0)


def nonfinite_seeds(tree: Any) -> list[int]:
    """The seeds (leading axis) whose state holds a NaN or an infinity: one reduction on the
    device, so that a checkpoint of a diverged state is never written or trusted."""
    finite = np.asarray(_finite_per_seed(tree))
    return [] if finite.ndim == 0 else np.flatnonzero(~finite).tolist()


@dataclass
class Loaded:
    """The newest intact checkpoint, and the newer ones that were damaged."""

    update: int
    path: Path
    parts: dict[str, Any]
    meta: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """(file, why) of each newer checkpoint that could not be used, newest first."""


def load_newest(
    directory: Path,
    templates: dict[str, Any],
    check: Callable[[dict[str, Any], Path], None] | None = None,
    restructure: bool = False,
    at_most: int | None = None,
) -> Loaded:
    """The newest checkpoint in `directory` that verifies (and passes `check`, which raises
    CheckpointError for a checkpoint it rejects), falling back over damaged ones
    (`restructure`: see `load`); with `at_most`, the newest of an update at most that."""
    found = [(u, p) for u, p in list_checkpoints(directory) if at_most is None or u <= at_most]
    if not found:
        raise CheckpointError(f"{directory} holds no checkpoint")
    skipped: list[tuple[Path, str]] = []
    for update, path in reversed(found):
        try:
            parts, meta = load(path, templates, restructure)
            if check is not None:
                check(parts, path)
        except CheckpointError as exc:
            skipped.append((path, str(exc)))
            continue
        return Loaded(update, path, parts, meta, skipped)
    reasons = "; ".join(why for _, why in skipped)
    raise CheckpointError(f"no intact checkpoint in {directory}: {reasons}")


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(update, path) of every checkpoint in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        match = _NAME.match(p.name)
        if match:
            found.append((int(match.group(1)), p))
    return sorted(found)


def prune(directory: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints."""
    for _, p in list_checkpoints(directory)[:-keep]:
        p.unlink(missing_ok=True)
