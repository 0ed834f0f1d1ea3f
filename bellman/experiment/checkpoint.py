"""Checkpoints: named pytrees written atomically with a checksum, read back against a template.

File layout: a magic line, an 8-byte header length, a JSON header (metadata, the payload's
SHA-256 and length), then a msgpack payload holding, per part, its tree structure and leaves.
A write goes to a temporary file that is fsynced and renamed over the target, so a run killed
mid-write leaves the previous checkpoint intact; a truncated or altered file fails its checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from bellman.errors import CheckpointError

MAGIC = b"BELLMAN-CHECKPOINT 1\n"
_NAME = re.compile(r"^update_(\d{9})\.ckpt$")


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


def save(path: Path, parts: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write `parts` (name -> pytree) and `meta` (JSON-able) to `path` atomically."""
    payload_tree = {}
    for name, tree in parts.items():
        leaves, treedef = jax.tree.flatten(jax.device_get(tree))
        payload_tree[name] = {
            "treedef": str(treedef),
            "leaves": {str(i): np.asarray(leaf) for i, leaf in enumerate(leaves)},
        }
    payload = serialization.msgpack_serialize(payload_tree)
    header = json.dumps(
        {**meta, "sha256": hashlib.sha256(payload).hexdigest(), "payload_bytes": len(payload)}
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    bad = f"checkpoint {path} is truncated or corrupted"
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{bad} (it does not start like a bellman checkpoint)")
    start = len(MAGIC) + 8
    if len(data) < start:
        raise CheckpointError(f"{bad} (its header is cut off)")
    header_len = int.from_bytes(data[len(MAGIC) : start], "little")
    try:
        meta = json.loads(data[start : start + header_len])
        payload = data[start + header_len :]
        expected = int(meta["payload_bytes"])
        digest = meta["sha256"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{bad} (its header does not parse)") from None
    if len(payload) != expected:
        raise CheckpointError(f"{bad} ({len(payload)} of {expected} payload bytes)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{bad} (its checksum does not match)")
    return meta, payload


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint, after verifying its checksum."""
    return _read(path)[0]


def load(path: Path, templates: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the parts named in `templates` (pytrees of arrays or ShapeDtypeStructs)."""
    meta, payload = _read(path)
    try:
        stored = serialization.msgpack_restore(payload)
    except Exception:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted") from None
    parts = {}
    for name, template in templates.items():
        leaves_t, treedef = jax.tree.flatten(template)
        if name not in stored or stored[name]["treedef"] != str(treedef):
            raise CheckpointError(
                f"checkpoint {path} does not match this run's settings (its '{name}' state "
                "has another structure)"
            )
        leaves = [stored[name]["leaves"][str(i)] for i in range(len(leaves_t))]
        for leaf, want in zip(leaves, leaves_t, strict=True):
            if tuple(leaf.shape) != tuple(want.shape) or leaf.dtype != want.dtype:
                raise CheckpointError(
                    f"checkpoint {path} does not match this run's settings (an array of shape "
                    f"{tuple(leaf.shape)} {leaf.dtype} where {tuple(want.shape)} {want.dtype} "
                    "is expected)"
                )
        parts[name] = jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in leaves])
    return parts, meta


def read_arrays(path: Path) -> dict[str, list[np.ndarray]]:
    """Every array of every part, in tree order, without a template (to compare checkpoints)."""
    _, payload = _read(path)
    stored = serialization.msgpack_restore(payload)
    return {
        name: [np.asarray(part["leaves"][str(i)]) for i in range(len(part["leaves"]))]
        for name, part in stored.items()
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
