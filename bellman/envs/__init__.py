"""Environments: the functional JAX protocol, its adapters, and the gymnasium host backend."""

from bellman.envs import discretize
from bellman.envs.core import EpisodeStatistics, JaxEnv, TimeStep, auto_reset
from bellman.envs.finite import register_gymnasium_envs
from bellman.envs.registry import ResolvedEnv, list_envs, resolve
from bellman.envs.roboparking import register_gymnasium_env
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

register_gymnasium_envs()
discretize.register_gymnasium_env()
register_gymnasium_env()
