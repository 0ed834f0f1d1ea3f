"""The algorithms, one module each, and the registry that names them."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from bellman.algos import ppo
from bellman.errors import UnknownNameError, closest


@dataclass(frozen=True)
class AlgoInfo:
    name: str
    module: ModuleType
    """Exposes `Config`, `DEFAULT_STEPS`, `check_env`, `init`, `act`, `greedy`, `learn`."""
    family: Literal["on_policy"]
    """Which runners drive it."""
    summary: str


ALGOS: dict[str, AlgoInfo] = {
    "ppo": AlgoInfo(
        "ppo", ppo, "on_policy", "Proximal Policy Optimization, clipped objective (2017)"
    ),
}


def get(name: str) -> AlgoInfo:
    """The algorithm registered as `name`, or UnknownNameError with the closest names."""
    key = name.lower()
    if key not in ALGOS:
        raise UnknownNameError(f"unknown algorithm '{name}'" + closest(name, ALGOS))
    return ALGOS[key]
