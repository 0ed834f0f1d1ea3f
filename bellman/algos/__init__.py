"""The algorithms, one module each, and the registry that names them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from bellman.algos import a2c, ddpg, dqn, ppo, reinforce, sac, tabular
from bellman.errors import ConfigError, UnknownNameError, closest


@dataclass(frozen=True)
class AlgoInfo:
    name: str
    module: ModuleType
    """Exposes `Config`, `DEFAULT_STEPS`, `check_env`, `init`, `act`, `greedy`, `learn`; optionally
    `evaluation_action` (the policy a run's return is reported for, when not `greedy`),
    `values_and_policy` (a finite env's value table and greedy policy, plotted after training),
    `PRESETS` (named sets of config fields, `--preset`) and `preset_for` (the preset an env
    gets when none is named), `fit_to_env` (settings that follow from the env, e.g. a rollout
    as long as its time limit), `EPISODIC` (rollouts of whole episodes from fresh resets), and
    `epsilon` (an exploration schedule, logged)."""
    family: Literal["on_policy", "off_policy"]
    """Which runners drive it: rollout -> learn, or act -> store -> sample -> learn."""
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)
    """Config fields this name presets (e.g. `sarsa` is the tabular module with method=sarsa)."""

    def make_config(self) -> Any:
        """The config this name trains with by default."""
        return dataclasses.replace(self.module.Config(), **self.defaults)

    def check_config(self, config: Any) -> Any:
        """`config` if it is this algorithm's config class, else ConfigError."""
        cls = self.module.Config
        if not isinstance(config, cls):
            raise ConfigError(
                f"config must be a {cls.__name__} ({self.module.__name__}.Config) for "
                f"{self.name}, not {type(config).__name__}"
            )
        return config


def _tabular(method: str, summary: str) -> AlgoInfo:
    return AlgoInfo(method, tabular, "on_policy", summary, {"method": method})


ALGOS: dict[str, AlgoInfo] = {
    "ppo": AlgoInfo(
        "ppo",
        ppo,
        "on_policy",
        "Proximal Policy Optimization (Schulman et al., 2017), clipped or adaptive-KL objective",
    ),
    "a2c": AlgoInfo(
        "a2c", a2c, "on_policy", "synchronous advantage actor-critic (Mnih et al., 2016)"
    ),
    "reinforce": AlgoInfo(
        "reinforce",
        reinforce,
        "on_policy",
        "Monte-Carlo policy gradient (Williams, 1992); reward-to-go and baselines as options",
    ),
    "dqn": AlgoInfo(
        "dqn",
        dqn,
        "off_policy",
        "Deep Q-Network with replay and a target network (Mnih et al., 2015); Double, dueling, "
        "n-step, prioritised as options",
    ),
    "ddpg": AlgoInfo(
        "ddpg",
        ddpg,
        "off_policy",
        "Deep Deterministic Policy Gradient (Lillicrap et al., 2016), Gaussian or OU noise",
    ),
    "td3": AlgoInfo(
        "td3",
        ddpg,
        "off_policy",
        "Twin Delayed DDPG (Fujimoto et al., 2018): twin critics, target smoothing, delayed actor",
        ddpg.TD3_DEFAULTS,
    ),
    "sac": AlgoInfo(
        "sac",
        sac,
        "off_policy",
        "Soft Actor-Critic (Haarnoja et al., 2018): twin soft critics, tanh-Gaussian actor, "
        "tuned temperature",
    ),
    "q-learning": _tabular("q-learning", "tabular Q-learning, epsilon-greedy (Watkins, 1989)"),
    "sarsa": _tabular("sarsa", "tabular SARSA, on-policy TD control (Rummery & Niranjan, 1994)"),
    "expected-sarsa": _tabular(
        "expected-sarsa", "tabular Expected SARSA (van Seijen et al., 2009)"
    ),
    "td0": _tabular("td0", "tabular TD(0) prediction of the random policy (Sutton, 1988)"),
}


def get(name: str) -> AlgoInfo:
    """The algorithm registered as `name`, or UnknownNameError with the closest names."""
    if not isinstance(name, str):
        raise ConfigError(f"algo must be a name ({', '.join(ALGOS)}), not {name!r}")
    key = name.lower()
    if key not in ALGOS:
        raise UnknownNameError(f"unknown algorithm '{name}'" + closest(name, ALGOS))
    return ALGOS[key]
