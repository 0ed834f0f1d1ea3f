"""Environments: the functional JAX protocol, its adapters, and the gymnasium host backend."""

from bellman.envs.core import EpisodeStatistics, JaxEnv, TimeStep, auto_reset
from bellman.envs.registry import ResolvedEnv, list_envs, resolve
from bellman.envs.spaces import Box, Discrete, EnvSpec, Other

__all__ = [
    "Box",
    "Discrete",
    "EnvSpec",
    "EpisodeStatistics",
    "JaxEnv",
    "Other",
    "ResolvedEnv",
    "TimeStep",
    "auto_reset",
    "list_envs",
    "resolve",
]
