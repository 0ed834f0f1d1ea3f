"""bellman: deep reinforcement learning in JAX, from the lectures' equations to benchmark numbers.

import bellman
run = bellman.train("ppo", env="CartPole-v1", seeds=8, steps=500_000)
run.summary["final_return_mean"]
policy = bellman.load(run.run_dir)
action = policy(observation)
"""

__version__ = "0.1.0"

from bellman import jax_setup

jax_setup.configure_xla_flags()
jax_setup.unroll_threefry_on_cpu()

from bellman.errors import (  # noqa: E402
    BellmanError,
    CheckpointError,
    ConfigError,
    EnvError,
    RunDirError,
    TrainingDiverged,
    UnknownNameError,
)
from bellman.experiment.evaluate import evaluate_run as evaluate  # noqa: E402
from bellman.experiment.policy import Policy, load  # noqa: E402
from bellman.experiment.train import Run, resume, train  # noqa: E402

__all__ = [
    "BellmanError",
    "CheckpointError",
    "ConfigError",
    "EnvError",
    "Policy",
    "Run",
    "RunDirError",
    "TrainingDiverged",
    "UnknownNameError",
    "__version__",
    "evaluate",
    "load",
    "resume",
    "train",
]
