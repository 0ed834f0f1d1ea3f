"""The lock in requirements/ agrees with pyproject.toml: every dependency pinned inside its range
on every supported Python and platform, every pin hashed, the runtime lock the dev lock's
versions. A dependency added to pyproject.toml without `make lock` fails here."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

LOCK = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\$")
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}")

PLATFORMS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_machine": "x86_64", "os_name": "posix"},
    "linux-aarch64": {"sys_platform": "linux", "platform_machine": "aarch64", "os_name": "posix"},
    "macos-arm64": {"sys_platform": "darwin", "platform_machine": "arm64", "os_name": "posix"},
    "windows-amd64": {"sys_platform": "win32", "platform_machine": "AMD64", "os_name": "nt"},
}
PLATFORM_SYSTEM = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}
PYTHONS = ["3.11", "3.12"]


@dataclass(frozen=True)
class Pin:
    version: str
    marker: str | None
    hashes: int


def read_lock(path: Path) -> dict[str, list[Pin]]:
    """name -> its pins (a package may have one pin per Python or platform, under markers)."""
    pins: dict[str, list[Pin]] = {}
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if match is None:
            continue
        name, version, marker = match.groups()
        hashes = 0
        while i + 1 + hashes < len(lines) and HASH.match(lines[i + 1 + hashes]):
            hashes += 1
        pins.setdefault(canonicalize_name(name), []).append(Pin(version, marker, hashes))
    return pins


def environment(python: str, platform: str) -> dict[str, str]:
    where = PLATFORMS[platform]
    return {
        **where,
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_system": PLATFORM_SYSTEM[where["sys_platform"]],
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def pinned_version(pins: dict[str, list[Pin]], name: str, env: dict[str, str]) -> str | None:
    applying = [p for p in pins.get(name, []) if p.marker is None or Marker(p.marker).evaluate(env)]
    assert len(applying) <= 1, f"{name} has {len(applying)} pins for {env}"
    return applying[0].version if applying else None


def check_locked(requirements: list[str], pins: dict[str, list[Pin]], lock: str) -> None:
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in {lock}: make lock"
        for python in PYTHONS:
            for platform in PLATFORMS:
                env = environment(python, platform)
                if requirement.marker is not None and not requirement.marker.evaluate(env):
                    continue
                version = pinned_version(pins, name, env)
                assert version is not None, f"{lock} has no {name} for Python {python}, {platform}"
                assert requirement.specifier.contains(Version(version), prereleases=True), (
                    f"{lock} pins {name}=={version}, outside pyproject.toml's '{text}': make lock"
                )


def test_every_runtime_dependency_is_locked_within_its_range() -> None:
    check_locked(PYPROJECT["project"]["dependencies"], read_lock(LOCK / "base.txt"), "base.txt")


@pytest.mark.parametrize("extra", sorted(PYPROJECT["project"]["optional-dependencies"]))
def test_every_extra_is_locked_in_the_dev_lock(extra: str) -> None:
    requirements = PYPROJECT["project"]["optional-dependencies"][extra]
    check_locked(requirements, read_lock(LOCK / "dev.txt"), "dev.txt")


def test_runtime_lock_has_the_dev_locks_versions() -> None:
    base, dev = read_lock(LOCK / "base.txt"), read_lock(LOCK / "dev.txt")
    for name, pins in base.items():
        assert name in dev, f"{name} is in base.txt but not in dev.txt"
        assert {(p.version, p.marker) for p in pins} <= {(p.version, p.marker) for p in dev[name]}


def test_every_pin_has_hashes() -> None:
    for lock in ("build.txt", "base.txt", "dev.txt"):
        pins = read_lock(LOCK / lock)
        assert pins, lock
        unhashed = [name for name, ps in pins.items() for p in ps if p.hashes == 0]
        assert not unhashed, f"{lock}: {unhashed} have no hash"


def test_build_lock_has_the_build_backend_and_the_installer() -> None:
    pins = read_lock(LOCK / "build.txt")
    assert "pip" in pins
    check_locked(PYPROJECT["build-system"]["requires"], pins, "build.txt")


def test_six_is_declared_for_gymnax() -> None:
    """gymnax 1.0.1 imports six without declaring it (the bug this lock's CI check found)."""
    declared = {
        canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]
    }
    assert "six" in declared
