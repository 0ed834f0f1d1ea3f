"""bellman: deep reinforcement learning in JAX, from the lectures' equations to benchmark numbers.

import bellman
run = bellman.train("ppo", env="CartPole-v1", seeds=8, steps=500_000)
run.summary["final_return_mean"]
policy = bellman.load(run.run_dir)
action = policy(observation)

Importing bellman changes nothing outside it (the garbage collector, XLA_FLAGS, JAX's lowerings,
sys.modules), except registering bellman's envs with gymnasium (`gymnasium.make("bellman/...")`).
The process-wide speed settings are applied by `bellman.configure()`, which `train`, `resume`,
`sweep` and the `bellman` command call first (see `bellman.jax_setup`).
"""

from bellman._version import __version__
from bellman.errors import (
    BellmanError,
    BellmanWarning,
    CheckpointError,
    ConfigError,
    EnvError,
    RunDirError,
    TrainingDiverged,
    UnknownNameError,
    UntrustedCodeError,
)
from bellman.experiment.callbacks import Chunk, EarlyStopping, KeepBest
from bellman.experiment.evaluate import evaluate
from bellman.experiment.policy import Policy, load
from bellman.experiment.sweep import SweepResult, sweep
from bellman.experiment.train import Run, resume, train
from bellman.jax_setup import configure

__all__ = [
    "BellmanError",
    "BellmanWarning",
    "CheckpointError",
    "Chunk",
    "ConfigError",
    "EarlyStopping",
    "EnvError",
    "KeepBest",
    "Policy",
    "Run",
    "RunDirError",
    "SweepResult",
    "TrainingDiverged",
    "UnknownNameError",
    "UntrustedCodeError",
    "__version__",
    "configure",
    "evaluate",
    "load",
    "resume",
    "sweep",
    "train",
]
