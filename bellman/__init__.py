"""bellman: deep reinforcement learning in JAX, from the lectures' equations to benchmark numbers.

import bellman
run = bellman.train("ppo", env="CartPole-v1", seeds=8, steps=500_000)
run.summary["final_return_mean"]
policy = bellman.load(run.run_dir)
action = policy(observation)
"""

__version__ = "0.1.0"

import gc

# Importing JAX, Flax and gymnax creates hundreds of thousands of objects and no garbage: the
# collector's passes over them cost a quarter of the import time.
_collecting = gc.isenabled()
gc.disable()

from bellman import jax_setup  # noqa: E402

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

if _collecting:
    gc.enable()

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
