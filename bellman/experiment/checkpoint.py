"""Checkpoints: named pytrees written atomically with a checksum, read back against a template.

File layout: a magic line, an 8-byte header length, a JSON header (metadata; per part, its tree
structure and its arrays' dtypes, shapes and offsets; the payload's SHA-256 and length), then the
payload: the arrays' raw bytes, one after the other. Arrays are written and hashed one at a time,
so a checkpoint of a replay memory of several gigabytes needs no second copy of it in memory.
A write goes to a temporary file that is fsynced and renamed over the target, so a run killed
mid-write leaves the previous checkpoint intact; a truncated or altered file fails its checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, BinaryIO

import jax
import numpy as np

from bellman.errors import CheckpointError

MAGIC = b"BELLMAN-CHECKPOINT 2\n"
_NAME = re.compile(r"^update_(\d{9})\.ckpt$")
_CHUNK = 1 << 24


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


def _header(meta: dict[str, Any], parts: dict[str, Any], digest: str, size: int) -> bytes:
    return json.dumps({**meta, "parts": parts, "sha256": digest, "payload_bytes": size}).encode()


def save(path: Path, parts: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write `parts` (name -> pytree) and `meta` (JSON-able) to `path` atomically."""
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
    # the header is written last, over room reserved for it (the digest is its last unknown)
    room = len(_header(meta, layout, "0" * 64, offset)) + 64
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    digest = hashlib.sha256()
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(room.to_bytes(8, "little"))
        f.write(b" " * room)
        for leaf in arrays:
            data = np.ascontiguousarray(jax.device_get(leaf)).reshape(-1).view(np.uint8)
            for start in range(0, data.size, _CHUNK):
                piece = data[start : start + _CHUNK].tobytes()
                digest.update(piece)
                f.write(piece)
            del data
        header = _header(meta, layout, digest.hexdigest(), offset)
        f.seek(len(MAGIC) + 8)
        f.write(header.ljust(room))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _open(path: Path) -> tuple[BinaryIO, dict[str, Any], int]:
    """The file (positioned after the header), its header, and where the payload starts; the
    payload's length and checksum verified."""
    bad = f"checkpoint {path} is truncated or corrupted"
    try:
        f = open(path, "rb")  # noqa: SIM115 (handed to the caller)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        if f.read(len(MAGIC)) != MAGIC:
            raise CheckpointError(f"{bad} (it does not start like a bellman checkpoint)")
        size = f.read(8)
        if len(size) < 8:
            raise CheckpointError(f"{bad} (its header is cut off)")
        header_len = int.from_bytes(size, "little")
        try:
            meta = json.loads(f.read(header_len))
            expected = int(meta["payload_bytes"])
            wanted = meta["sha256"]
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"{bad} (its header does not parse)") from None
        start = len(MAGIC) + 8 + header_len
        payload = os.fstat(f.fileno()).st_size - start
        if payload != expected:
            raise CheckpointError(f"{bad} ({payload} of {expected} payload bytes)")
        digest = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
        if digest.hexdigest() != wanted:
            raise CheckpointError(f"{bad} (its checksum does not match)")
        return f, meta, start
    except BaseException:
        f.close()
        raise


def _array(f: BinaryIO, start: int, entry: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(entry["dtype"])
    shape = tuple(entry["shape"])
    f.seek(start + int(entry["offset"]))
    count = int(np.prod(shape, dtype=np.int64))
    return np.fromfile(f, dtype=dtype, count=count).reshape(shape)


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint, after verifying its checksum."""
    f, meta, _ = _open(path)
    f.close()
    return {k: v for k, v in meta.items() if k != "parts"}


def load(path: Path, templates: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the parts named in `templates` (pytrees of arrays or ShapeDtypeStructs)."""
    f, meta, start = _open(path)
    with f:
        stored = meta.pop("parts")
        parts = {}
        for name, template in templates.items():
            leaves_t, treedef = jax.tree.flatten(template)
            if name not in stored or stored[name]["treedef"] != str(treedef):
                raise CheckpointError(
                    f"checkpoint {path} does not match this run's settings (its '{name}' state "
                    "has another structure)"
                )
            entries = stored[name]["leaves"]
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
