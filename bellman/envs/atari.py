"""Atari 2600 games through ale-py, with the standard preprocessing of Mnih et al. (2015).

    env = make("ALE/Breakout-v5")          # observations: [4, 84, 84] uint8

The chain, as Stable-Baselines3 and the DQN papers build it:
- no-op reset: up to 30 random no-op actions at the start of a game;
- frame skip 4: each action repeated for 4 frames, the observation the pixel-wise max of the last
  two (which removes the flicker of sprites drawn every other frame);
- grayscale, resized to 84 x 84 (gymnasium's `AtariPreprocessing`);
- episodic life: losing a life ends the episode for learning (terminated), but the game goes on
  and the next "reset" continues it; `info["game_over"]` marks the real end of a game, where the
  score is reported;
- fire on reset, for games that need FIRE to start (Breakout);
- the last 4 frames stacked (gymnasium's `FrameStackObservation`, padding with the first frame).
Rewards stay raw here: learning clips them (`clip_rewards` of the algorithm), and returns are
reported as game scores. Games have v5's sticky actions (probability 0.25) unless the id says
otherwise (the `NoFrameskip-v4` ids have none).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

FRAME_STACK = 4


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or env_id.endswith(("NoFrameskip-v4", "NoFrameskip-v0"))


def register() -> None:
    """Register ale-py's games with gymnasium (they are known once ale_py is imported)."""
    try:
        import ale_py
    except ImportError:
        return
    gym.register_envs(ale_py)


class EpisodicLife(gym.Wrapper):
    """A lost life ends the episode for learning (terminated); `reset` then continues the game
    with a no-op step unless the game is over. `info["game_over"]` marks the game's real end."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def ale_lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())  # type: ignore[attr-defined]

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.ale_lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, {**info, "game_over": self.game_over}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:  # a life was lost: carry on from where the game is
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self.ale_lives()
        self.game_over = False
        return obs, info


class FireOnReset(gym.Wrapper):
    """Press FIRE after every reset, for games that wait for it (Breakout, ...)."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def make(
    env_id: str,
    *,
    episodic_life: bool = True,
    frame_stack: int = FRAME_STACK,
    **kwargs: Any,
) -> gym.Env:
    """The preprocessed game `env_id`: observations `[frame_stack, 84, 84]` uint8."""
    register()
    env = gym.make(env_id, frameskip=1, **kwargs)
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False
    )
    if episodic_life:
        env = EpisodicLife(env)
    if "FIRE" in env.unwrapped.get_action_meanings():  # type: ignore[attr-defined]
        env = FireOnReset(env)
    return gym.wrappers.FrameStackObservation(env, frame_stack)
