"""Stable-Baselines3 PPO on CartPole-v1 with the W1 settings; prints one JSON line (run in the
PyTorch venv)."""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=4, seed=args.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=128,
        batch_size=128,
        n_epochs=4,
        learning_rate=lambda remaining: 2.5e-4 * remaining,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs={
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": torch.nn.Tanh,
        },
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    learn_start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    end = time.perf_counter()
    returns, _ = evaluate_policy(
        model,
        gym.make("CartPole-v1"),
        n_eval_episodes=20,
        deterministic=True,
        return_episode_rewards=True,
    )
    print(
        json.dumps(
            {
                "library": "stable-baselines3",
                "seeds": 1,
                "steps": int(model.num_timesteps),
                "compile_s": 0.0,
                "train_s": end - learn_start,
                "setup_s": learn_start - start,
                "final_return_mean": float(np.mean(returns)),
                "final_return_per_seed": [float(np.mean(returns))],
                "eval": "deterministic policy, 20 episodes",
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
