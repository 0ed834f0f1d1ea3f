"""DAgger, dataset aggregation (Ross, Gordon & Bagnell, 2011): imitation with an expert queried
in the states the learner itself reaches.

The algorithm, as the DAgger runners drive it (`runners.dagger` on JAX envs, compiled;
`runners.dagger_host` on gymnasium envs, the same functions):

    D <- the demonstrations (`--dataset`, may be empty); pi_1 <- a policy       -> `init`, `prepare`
    for i = 1, 2, ...:                                                         (one update each)
        beta_i = beta * beta_decay^(i-1)
        play pi_i' = beta_i pi* + (1 - beta_i) pi_i for T steps in E envs       -> runner
        D_i = {(s, pi*(s))}: every visited state, labelled by the expert        -> runner
        D <- D u D_i                                                             -> runner
        pi_{i+1}: `gradient_steps` steps of behaviour cloning on D               -> `learn` (BC's)

The learner is behaviour cloning's network and loss (`algos.bc`): cross-entropy for discrete
actions, squared error for continuous ones; the paper trains pi_{i+1} afresh on D, bellman goes
on training the same network (as most implementations do), which costs fewer steps per round.
The mixture is drawn per step and env. The expert is a trained run (`--expert RUN_DIR`), its
greedy policy: on the gymnasium backend, a run on the gymnasium backend of the same env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bellman import config as cfg
from bellman.algos.bc import (
    BCState,
    check_env,
    evaluation_action,
    evaluation_memory,
    greedy,
    init,
    learn,
    prepare,
)

__all__ = [
    "DEFAULT_STEPS",
    "BCState",
    "Config",
    "DaggerConfig",
    "check_env",
    "evaluation_action",
    "evaluation_memory",
    "greedy",
    "init",
    "learn",
    "prepare",
]


@dataclass(frozen=True)
class DaggerConfig:
    """DAgger's settings: the rounds (envs, steps, gradient steps), the mixture's schedule, the
    aggregate's size, and the cloned network's (behaviour cloning's defaults)."""

    num_envs: int = 8
    """Parallel environments of each round's rollout, per seed."""
    num_steps: int = 64
    """Steps per env in each round: each round labels num_envs * num_steps states."""
    gradient_steps: int = 200
    """Cloning steps on D after each round."""
    beta: float = 1.0
    """The expert's share of the first round's actions (1: the expert plays it alone)."""
    beta_decay: float = 0.5
    """beta_i = beta * beta_decay^(i-1): the expert's share shrinks round after round."""
    aggregate_size: int = 200_000
    """Labelled states D keeps after the demonstrations (then the oldest are overwritten)."""
    batch_size: int = 256
    """States per cloning step, drawn uniformly from D."""
    gamma: float = 0.99
    """Unused by DAgger (no values are learned); kept for the offline family's settings."""
    learning_rate: float = 1e-3
    """Adam step size of the cloned network."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "relu"
    """Activation of the hidden layers."""
    normalize_obs: bool = True
    """Standardise observations by the demonstrations' mean and std (with no demonstrations,
    the identity)."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        from bellman import nets

        cfg.check_fields(self, {})
        cfg.at_least(self, 1, "num_envs", "num_steps", "batch_size", "aggregate_size")
        cfg.at_least(self, 0, "gradient_steps")
        cfg.product_at_most(
            self, ("num_envs", "num_steps"), cfg.INT32_MAX, "bellman counts in 32-bit integers"
        )
        cfg.positive(self, "learning_rate")
        cfg.within(self, 0, 1, "beta", "beta_decay", "gamma")
        nets.check_mlp(self)


Config = DaggerConfig
DEFAULT_STEPS = 20_480
"""Env steps per seed: states played and labelled by the expert."""
