"""mbrl-lib's PETS (PyTorch, Pineda et al., 2021) on gymnasium's Pendulum-v1, run in its own
venv by benchmarks/pets_pendulum.py; prints one JSON object: each episode's env steps, return
and wall time since training started (after the imports, as bellman's `time_s`).

    python mbrl_pets.py --steps 3000 --seed 0 [--hidden 64 --layers 3 --ensemble 5
        --population 200 --elites 20 --iterations 4 --horizon 20 --particles 5]

mbrl-lib's own training loop (`mbrl.algorithms.pets.train`): a random episode first, the model
retrained every `--train-every` steps (epochs over the data, early stopping on a validation
split), CEM through the ensemble with `--particles` particles per sequence, the reward learned
(no known reward function), no termination. The network, ensemble and CEM sizes are set to
bellman's PETS defaults so that the two do the same work per step.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import gymnasium as gym
import mbrl.algorithms.pets as pets
import mbrl.env.termination_fns as termination_fns
import mbrl.util
import omegaconf
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--ensemble", type=int, default=5)
    parser.add_argument("--population", type=int, default=200)
    parser.add_argument("--elites", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--particles", type=int, default=5)
    parser.add_argument("--train-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)

    episodes: list[dict] = []
    log_data = mbrl.util.Logger.log_data

    def timed_log(self, group, data):  # record each episode's wall time as it ends
        if "episode_reward" in data:
            episodes.append(
                {
                    "env_step": int(data["env_step"]),
                    "return": float(data["episode_reward"]),
                    "wall_s": time.perf_counter() - start,
                }
            )
        return log_data(self, group, data)

    mbrl.util.Logger.log_data = timed_log
    env = gym.make("Pendulum-v1")
    env.reset(seed=args.seed)
    cfg = omegaconf.OmegaConf.create(
        {
            "seed": args.seed,
            "device": "cpu",
            "debug_mode": False,
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                "_recursive_": False,
                "device": "cpu",
                "num_layers": args.layers,
                "in_size": "???",
                "out_size": "???",
                "ensemble_size": args.ensemble,
                "hid_size": args.hidden,
                "deterministic": False,
                "propagation_method": "fixed_model",
                "learn_logvar_bounds": False,
                "activation_fn_cfg": {"_target_": "torch.nn.SiLU"},
            },
            "algorithm": {
                "name": "pets",
                "agent": {
                    "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
                    "_recursive_": False,
                    "action_lb": "???",
                    "action_ub": "???",
                    "planning_horizon": args.horizon,
                    "optimizer_cfg": {
                        "_target_": "mbrl.planning.CEMOptimizer",
                        "num_iterations": args.iterations,
                        "elite_ratio": args.elites / args.population,
                        "population_size": args.population,
                        "alpha": 0.1,
                        "device": "cpu",
                        "lower_bound": "???",
                        "upper_bound": "???",
                        "return_mean_elites": True,
                        "clipped_normal": False,
                    },
                    "replan_freq": 1,
                    "verbose": False,
                },
                "normalize": True,
                "normalize_double_precision": True,
                "target_is_delta": True,
                "initial_exploration_steps": 200,
                "freq_train_model": args.train_every,
                "learned_rewards": True,
                "num_particles": args.particles,
                "dataset_size": args.steps + 1000,
            },
            "overrides": {
                "trial_length": 200,
                "num_steps": args.steps,
                "model_batch_size": 256,
                "validation_ratio": 0.1,
                "model_lr": 1e-3,
                "model_wd": 5e-5,
                "num_epochs_train_model": 25,
                "patience": 25,
                "num_elites": args.ensemble,
            },
        }
    )
    with tempfile.TemporaryDirectory() as work_dir:
        pets.train(env, termination_fns.no_termination, None, cfg, work_dir=work_dir)
    print(json.dumps({"episodes": episodes, "wall_s": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
