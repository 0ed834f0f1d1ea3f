"""Environments written the gymnasium way, as a user would, for the host-backend tests."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right along a corridor of `length` cells: reward 1 at the end, -0.01 per step.

    Discrete(2) actions (0: left, 1: right); observation: the position scaled to [0, 1].
    Truncated after 50 steps.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length: int = 6, render_mode: str | None = None):
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0
        self.steps = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position / self.length], np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.position = 0
        self.steps = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.position = max(0, self.position + (1 if int(action) == 1 else -1))
        self.steps += 1
        terminated = self.position >= self.length
        truncated = not terminated and self.steps >= 50
        reward = 1.0 if terminated else -0.01
        return self._obs(), reward, terminated, truncated, {}

    def render(self) -> np.ndarray:
        frame = np.full((16, 16 * (self.length + 1), 3), 255, np.uint8)
        frame[:, 16 * self.position : 16 * (self.position + 1)] = (200, 30, 30)
        return frame


class MultiDiscreteEnv(gym.Env):
    """An env with MultiDiscrete actions, which PPO does not handle."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.MultiDiscrete([2, 3])

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(2, np.float32), 0.0, True, False, {}


class SlipperyChain(gym.Env):
    """A finite MDP written the toy-text way, with its transition table `P[s][a]`.

    States 0..3 in a row; action 1 moves right with probability 0.8 (else stays), action 0 moves
    left; reaching state 3 pays 1 and ends the episode. Optimal values under gamma (set by the
    solver): every state prefers moving right.
    """

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Discrete(4)
        self.action_space = gym.spaces.Discrete(2)
        self.P: dict[int, dict[int, list[tuple[float, int, float, bool]]]] = {}
        for s in range(4):
            left, right = max(s - 1, 0), min(s + 1, 3)
            if s == 3:
                self.P[s] = {a: [(1.0, 3, 0.0, True)] for a in range(2)}
                continue
            self.P[s] = {
                0: [(1.0, left, 0.0, False)],
                1: [(0.8, right, float(right == 3), right == 3), (0.2, s, 0.0, False)],
            }
        self.state = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self.state = 0
        return self.state, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict]:
        outcomes = self.P[self.state][int(action)]
        i = self.np_random.choice(len(outcomes), p=[o[0] for o in outcomes])
        _, self.state, reward, terminated = outcomes[i]
        return self.state, reward, terminated, False, {}
