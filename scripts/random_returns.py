"""The uniformly random policy's mean episode return, the `random` column of bellman.stats.

    python scripts/random_returns.py [--episodes 1000] [ENV_ID ...]

Plays `--episodes` episodes of each gymnasium env with actions drawn uniformly from its action
space (`action_space.sample()`, seeded), each episode to its end or its time limit, and prints the
mean return with its standard error. bellman.stats.SCORE_RANGES records what this printed.
"""

from __future__ import annotations

import argparse
import math

import gymnasium as gym
import numpy as np

ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1")


def random_returns(env_id: str, episodes: int, seed: int = 0) -> np.ndarray:
    """The returns of `episodes` episodes of the uniformly random policy on `env_id`."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            returns[episode] += float(reward)
            done = terminated or truncated
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("envs", nargs="*", default=list(ENVS), metavar="ENV_ID")
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    for env_id in args.envs:
        returns = random_returns(env_id, args.episodes)
        sem = returns.std(ddof=1) / math.sqrt(len(returns))
        print(f"{env_id:28s} {returns.mean():10.2f} ± {sem:.2f} ({len(returns)} episodes)")


if __name__ == "__main__":
    main()
