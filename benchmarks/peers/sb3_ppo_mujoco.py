"""Stable-Baselines3 PPO on a MuJoCo env with the PPO paper's MuJoCo settings; prints one JSON line
(run in the PyTorch venv).

    python sb3_ppo_mujoco.py [--env HalfCheetah-v5] [--steps 1000000] [--seed 0]

Settings: the PPO paper's MuJoCo ones (Schulman et al., 2017, table 3 and section 6.1): 1 env,
rollouts of 2048 steps, 10 epochs of minibatches of 64, Adam at a constant 3e-4, gamma 0.99, GAE
lambda 0.95, clip 0.2, no entropy bonus, separate 64x64 tanh actor and critic; and
Stable-Baselines3's value coefficient 0.5 and gradient norm 0.5 (not in the paper). The env
is wrapped in VecNormalize (running mean and variance of the observations, and rewards scaled by
the running std of the discounted return), as RL Zoo does for MuJoCo. The final return is that of
the deterministic policy over 10 episodes of an evaluation env that uses the training env's
observation statistics, frozen, and reports the raw rewards.
"""

import argparse
import json
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

GAMMA = 0.99
EVAL_EPISODES = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    env = VecNormalize(
        make_vec_env(args.env, n_envs=1, seed=args.seed),
        norm_obs=True,
        norm_reward=True,
        gamma=GAMMA,
    )
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=2048,
        batch_size=64,
        n_epochs=10,
        learning_rate=3e-4,
        gamma=GAMMA,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.0,
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

    # evaluation: the training statistics, no longer updated; the env's own rewards
    eval_env = VecNormalize(
        make_vec_env(args.env, n_envs=1, seed=args.seed + 10_000),
        training=False,
        norm_obs=True,
        norm_reward=False,
    )
    eval_env.obs_rms = env.obs_rms.copy()
    returns, _ = evaluate_policy(
        model,
        eval_env,
        n_eval_episodes=EVAL_EPISODES,
        deterministic=True,
        return_episode_rewards=True,
    )
    steps = int(model.num_timesteps)
    print(
        json.dumps(
            {
                "library": "stable-baselines3",
                "env": args.env,
                "seeds": 1,
                "steps": steps,
                "compile_s": 0.0,
                "train_s": end - learn_start,
                "setup_s": learn_start - start,
                "steps_per_s": steps / (end - learn_start),
                "final_return_mean": float(np.mean(returns)),
                "final_return_per_seed": [float(np.mean(returns))],
                "eval": f"deterministic policy, {EVAL_EPISODES} episodes, VecNormalize obs stats",
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
