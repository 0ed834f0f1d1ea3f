"""The versions this Python's environment resolved, against a lock file.

    python scripts/lock_drift.py requirements/build.txt requirements/base.txt

Prints every installed distribution (bellman aside) with its version, and for each one that
differs from the lock files (a newer release, or a package they do not have) what they pin. `make
check-latest` runs it in a venv built from pyproject.toml's ranges alone, so its output is the
drift between what `pip install bellman` gets today and what the lock installs. Exits 0: drift
is information; the smoke test that follows says whether the newest versions still work.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked_versions(lock: Path) -> dict[str, str]:
    """name -> version of the lock's pins whose markers hold for this interpreter."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match is None:
            continue
        name, version, marker = match.groups()
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(name)] = version
    return pins


def installed_versions() -> dict[str, str]:
    names = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    names.pop("bellman", None)
    return names


def main(argv: list[str]) -> int:
    locks = [Path(arg) for arg in argv]
    if not locks or not all(lock.is_file() for lock in locks):
        print("usage: python scripts/lock_drift.py LOCK_FILE [LOCK_FILE ...]", file=sys.stderr)
        return 2
    pins = {name: v for lock in locks for name, v in locked_versions(lock).items()}
    installed = installed_versions()
    width = max(map(len, installed)) + 2
    drift = 0
    print(f"resolved from pyproject.toml's ranges, against {', '.join(map(str, locks))}:")
    for name in sorted(installed):
        version, locked = installed[name], pins.get(name)
        if locked == version:
            note = ""
        elif locked is None:
            note = "  (not in the lock)"
        else:
            note = f"  (lock: {locked})"
        drift += bool(note)
        print(f"  {name:<{width}}{version}{note}")
    missing = sorted(set(pins) - set(installed))
    for name in missing:
        print(f"  {name:<{width}}not installed  (lock: {pins[name]})")
    print(f"{drift + len(missing)} of {len(installed)} packages differ from the lock")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
