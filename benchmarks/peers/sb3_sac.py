"""Stable-Baselines3 (or SBX) SAC with workload W3's settings on Pendulum-v1, or the usual MuJoCo
SAC settings on a MuJoCo env; prints one JSON line (run in the PyTorch venv, or SBX's).

    python sb3_sac.py [--sbx] [--steps 20000] [--env Pendulum-v1] [--seed 0]
    python sb3_sac.py --env HalfCheetah-v5 --steps 50000 --learning-starts 10000

W3: Adam at 1e-3, minibatches of 256, a buffer of 1,000,000, learning from step 1000, one
gradient step per env step, tau 0.005, gamma 0.99, the entropy coefficient tuned towards minus
the action dimension (SB3's "auto", starting at 1), 256x256 ReLU actor and twin critics (ReLU is
SB3's and SBX's default for SAC), one env. MuJoCo: the same but Adam at 3e-4 and learning from
step 10,000. The final return is that of the deterministic policy over 10 episodes (Pendulum) or
5 (MuJoCo) of a separately seeded evaluation env.

On a MuJoCo env the JSON also has `learning_s` and `learning_steps_per_s`: the time from the env
step that first takes the step count past `learning_starts` to the end of training, and the
steps after `learning_starts` over it, so that a short run's rate is that of acting and learning
together rather than diluted by the cheap warm-up steps.
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


class LearningStartTimer(BaseCallback):
    """Records `time.perf_counter()` at the first env step past `learning_starts`."""

    def __init__(self, learning_starts: int) -> None:
        super().__init__()
        self.learning_starts = learning_starts
        self.start: float | None = None

    def _on_step(self) -> bool:
        if self.start is None and self.num_timesteps > self.learning_starts:
            self.start = time.perf_counter()
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sbx", action="store_true", help="SBX (JAX) instead of SB3 (PyTorch)")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--learning-starts", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.sbx:
        from sbx import SAC
    else:
        from stable_baselines3 import SAC
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    start = time.perf_counter()
    mujoco = "mujoco" in str(gym.spec(args.env).entry_point)
    if mujoco:
        learning_rate, default_starts, eval_episodes = 3e-4, 10_000, 5
    else:  # W3
        learning_rate, default_starts, eval_episodes = 1e-3, 1000, 10
    learning_starts = default_starts if args.learning_starts is None else args.learning_starts
    env = make_vec_env(args.env, n_envs=1, seed=args.seed)
    model = SAC(
        "MlpPolicy",
        env,
        learning_rate=learning_rate,
        buffer_size=1_000_000,
        learning_starts=learning_starts,
        batch_size=256,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        ent_coef="auto",
        policy_kwargs={"net_arch": [256, 256]},
        seed=args.seed,
        verbose=0,
        **({} if args.sbx else {"device": "cpu"}),
    )
    timer = LearningStartTimer(learning_starts)
    learn_start = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=timer)
    end = time.perf_counter()
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 10_000)
    returns, _ = evaluate_policy(
        model,
        eval_env,
        n_eval_episodes=eval_episodes,
        deterministic=True,
        return_episode_rewards=True,
    )
    steps = int(model.num_timesteps)
    result = {
        "library": "sbx" if args.sbx else "stable-baselines3",
        "env": args.env,
        "seeds": 1,
        "steps": steps,
        "compile_s": 0.0,
        "train_s": end - learn_start,
        "setup_s": learn_start - start,
        "final_return_mean": float(np.mean(returns)),
        "final_return_per_seed": [float(np.mean(returns))],
        "eval": f"deterministic policy, {eval_episodes} episodes",
    }
    if mujoco and timer.start is not None:
        result["learning_s"] = end - timer.start
        result["learning_steps_per_s"] = (steps - learning_starts) / (end - timer.start)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
