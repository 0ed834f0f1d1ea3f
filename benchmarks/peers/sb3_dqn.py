"""Stable-Baselines3 (or SBX) DQN with workload W2's settings on CartPole-v1, or the Nature-DQN
settings on an Atari game; prints one JSON line (run in the PyTorch venv, or SBX's).

    python sb3_dqn.py [--sbx] [--steps 100000] [--env CartPole-v1]
    python sb3_dqn.py --env ALE/Breakout-v5 --steps 50000 --learning-starts 10000
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sbx", action="store_true", help="SBX (JAX) instead of SB3 (PyTorch)")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--learning-starts", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.sbx:
        from sbx import DQN
    else:
        from stable_baselines3 import DQN
    from stable_baselines3.common.evaluation import evaluate_policy

    start = time.perf_counter()
    atari = args.env.startswith("ALE/")
    if atari:
        import ale_py
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack

        gym.register_envs(ale_py)
        # the v5 games skip 4 frames themselves; SB3's wrapper skips (and max-pools) instead
        vec = make_atari_env(args.env, n_envs=1, seed=args.seed, env_kwargs={"frameskip": 1})
        env = VecFrameStack(vec, n_stack=4)
        model = DQN(
            "CnnPolicy",
            env,
            learning_rate=1e-4,
            buffer_size=100_000,
            learning_starts=args.learning_starts or 100_000,
            batch_size=32,
            gamma=0.99,
            train_freq=4,
            gradient_steps=1,
            target_update_interval=1000,
            exploration_fraction=0.1,
            exploration_final_eps=0.01,
            optimize_memory_usage=False,
            seed=args.seed,
            verbose=0,
            **({} if args.sbx else {"device": "cpu"}),
        )
    else:  # W2: RL Zoo's CartPole DQN
        env = gym.make(args.env)
        model = DQN(
            "MlpPolicy",
            env,
            learning_rate=2.3e-3,
            batch_size=64,
            buffer_size=100_000,
            learning_starts=args.learning_starts or 1000,
            gamma=0.99,
            target_update_interval=10,
            train_freq=256,
            gradient_steps=128,
            exploration_fraction=0.16,
            exploration_final_eps=0.04,
            policy_kwargs={"net_arch": [256, 256]},
            seed=args.seed,
            verbose=0,
            **({} if args.sbx else {"device": "cpu"}),
        )
    learn_start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    end = time.perf_counter()
    eval_env = model.get_env() if atari else gym.make(args.env)
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=5 if atari else 20, deterministic=True,
        return_episode_rewards=True,
    )  # fmt: skip
    print(
        json.dumps(
            {
                "library": "sbx" if args.sbx else "stable-baselines3",
                "seeds": 1,
                "steps": int(model.num_timesteps),
                "compile_s": 0.0,
                "train_s": end - learn_start,
                "setup_s": learn_start - start,
                "final_return_mean": float(np.mean(returns)),
                "final_return_per_seed": [float(np.mean(returns))],
                "eval": f"deterministic policy, {5 if atari else 20} episodes",
            }
        )
    )


if __name__ == "__main__":
    main()
