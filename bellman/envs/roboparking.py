"""RoboParking, the user-written environment of the Cambridge "Deep Q Networks" lecture.

A point-mass robot drives in a 4 x 4 parking box and must park in the corner (0, 0) at rest.

- Observation: (x, y, xdot, ydot), a float32 Box with low (0, 0, -1, -1) and high (4, 4, 1, 1).
- Actions (Discrete(4)): 0 left (-x), 1 right (+x), 2 forward (+y), 3 backward (-y); each is a unit
  acceleration along that direction for one time step of `DT` = 0.1.
- Dynamics (semi-implicit Euler, one axis accelerated per step):
  `v <- clip(v + DT * a, -1, 1)`, then `p <- p + DT * v`. A wall stops the motion along its axis:
  where `p` leaves [0, 4] it is clipped back onto the wall and that axis's velocity is set to 0
  (an inelastic bump). Velocities are thus multiples of 0.1; the robot moves at most 0.1 a step.
- Reward: minus the distance to the goal, `-||(x, y, xdot, ydot)||_2`, after the step.
- Termination: the distance is below `GOAL_TOLERANCE` = 0.01.
- Truncation: after `MAX_EPISODE_STEPS` = 200 steps (gymnasium's `max_episode_steps` for the
  numpy env; the JAX env counts the steps itself).
- Start: a position uniform in the box [0, 4] x [0, 4], at rest.

Why the goal is reachable exactly: velocities move in steps of 0.1 and positions by multiples of
0.01 per step, so stopping within 0.01 of (0, 0) at rest in open space would need luck. The walls do
it instead: the goal is the corner, and driving into a wall puts that coordinate exactly on 0 and
its velocity exactly to 0. Driving left until the x-wall stops the robot, then backward until the
y-wall does (or both at once), parks it at exactly (0, 0, 0, 0), and pushing into a wall keeps it
there. A good policy accelerates both axes toward the corner (top speed after 10 steps per axis)
parks in 50 steps from the far corner (36 on average from a random start, a return of about -80),
far inside the limit. A uniformly random policy parks in about 5% of episodes and returns about
-640 (-3.2 per step).

`RoboParkingEnv` is written plainly in numpy, the way a user of the lecture writes their own env
(registered with gymnasium as `bellman/RoboParking-v0`); `RoboParking` is the same env in bellman's
functional JAX protocol, for the compiled backend. A test checks that both follow the same
trajectories.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.envs.core import TimeStep, auto_reset
from bellman.envs.spaces import Discrete, EnvSpec

ENV_ID = "RoboParking-v0"
GYMNASIUM_ID = f"bellman/{ENV_ID}"
SIZE = 4.0
"""Side of the parking box: positions lie in [0, SIZE]."""
MAX_SPEED = 1.0
"""Velocities lie in [-MAX_SPEED, MAX_SPEED]."""
DT = 0.1
"""Time step of the integration."""
ACCELERATION = 1.0
"""Magnitude of the acceleration an action applies."""
GOAL_TOLERANCE = 0.01
"""The episode terminates when the distance to (0, 0, 0, 0) is below this."""
MAX_EPISODE_STEPS = 200
"""The time limit: episodes are truncated after this many steps."""
DIRECTIONS = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], np.float32)
"""`[4, 2]` unit acceleration of each action: left, right, forward, backward."""
OBS_LOW = (0.0, 0.0, -MAX_SPEED, -MAX_SPEED)
OBS_HIGH = (SIZE, SIZE, MAX_SPEED, MAX_SPEED)


class RoboParkingEnv(gym.Env):
    """RoboParking as a plain gymnasium env in numpy (the dynamics are in the module docstring).

    `reset(options={"state": (x, y, xdot, ydot)})` starts from a given state instead of a random
    position at rest. Render mode "rgb_array" draws the box, the goal corner and the robot.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (gymnasium)

    def __init__(self, render_mode: str | None = None):
        self.observation_space = gym.spaces.Box(
            low=np.array(OBS_LOW, np.float32), high=np.array(OBS_HIGH, np.float32), dtype=np.float32
        )
        self.action_space = gym.spaces.Discrete(4)
        self.render_mode = render_mode
        self.state = np.zeros(4, np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options is not None and "state" in options:
            self.state = np.asarray(options["state"], np.float32).reshape(4).copy()
        else:
            position = self.np_random.uniform(0.0, SIZE, size=2).astype(np.float32)
            self.state = np.concatenate([position, np.zeros(2, np.float32)])
        return self.state.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        position, velocity = self.state[:2], self.state[2:]
        acceleration = np.float32(ACCELERATION * DT) * DIRECTIONS[int(action)]
        velocity = np.clip(velocity + acceleration, -MAX_SPEED, MAX_SPEED)
        position = position + np.float32(DT) * velocity
        hit_wall = (position < 0.0) | (position > SIZE)
        position = np.clip(position, 0.0, SIZE)
        velocity = np.where(hit_wall, np.float32(0.0), velocity)
        self.state = np.concatenate([position, velocity]).astype(np.float32)
        distance = float(np.linalg.norm(self.state))
        terminated = distance < GOAL_TOLERANCE
        return self.state.copy(), -distance, terminated, False, {"distance": distance}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return draw(self.state)


def draw(state: np.ndarray, pixels: int = 256) -> np.ndarray:
    """An RGB picture `[pixels, pixels, 3]` of the box, the goal corner and the robot in `state`.

    y points up; the robot is a blue dot with a red line showing its velocity.
    """
    margin = pixels // 16
    scale = (pixels - 2 * margin) / SIZE
    image = np.full((pixels, pixels, 3), 245, np.uint8)

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return pixels - margin - y * scale, margin + x * scale  # (row, column)

    top, left = to_pixel(0.0, SIZE)
    bottom, right = to_pixel(SIZE, 0.0)
    image[int(top) : int(bottom) + 1, int(left) : int(right) + 1] = 255
    rows, cols = np.mgrid[:pixels, :pixels]
    goal_row, goal_col = to_pixel(0.0, 0.0)
    goal = (rows - goal_row) ** 2 + (cols - goal_col) ** 2 <= (0.3 * scale) ** 2
    image[goal & (rows <= goal_row) & (cols >= goal_col)] = (76, 175, 80)
    for r, c in ((top, left), (bottom, right)):  # the walls
        image[int(top) : int(bottom) + 1, int(c) - 1 : int(c) + 2] = 60
        image[int(r) - 1 : int(r) + 2, int(left) : int(right) + 1] = 60
    x, y, xdot, ydot = (float(v) for v in state)
    row, col = to_pixel(x, y)
    robot = (rows - row) ** 2 + (cols - col) ** 2 <= (0.12 * scale) ** 2
    image[robot] = (30, 90, 200)
    for t in np.linspace(0.0, 1.0, 2 * pixels // 8):  # velocity: 0.5 box units at top speed
        r, c = to_pixel(x + 0.5 * t * xdot, y + 0.5 * t * ydot)
        if 0 <= r < pixels and 0 <= c < pixels:
            image[int(r), int(c)] = (229, 57, 53)
    return image


class RoboParkingState(struct.PyTreeNode):
    obs: jax.Array
    """`[4]` float32 (x, y, xdot, ydot)."""
    time: jax.Array
    """`[]` int32 steps taken in the episode."""


class RoboParking:
    """RoboParking in bellman's functional JAX protocol: the same dynamics as `RoboParkingEnv`.

    Auto-resets when an episode ends (see `bellman.envs.core.auto_reset`) and truncates at
    `max_episode_steps` itself.
    """

    def __init__(self, max_episode_steps: int = MAX_EPISODE_STEPS):
        self.max_episode_steps = max_episode_steps
        self.spec = EnvSpec(
            id=ENV_ID,
            obs_shape=(4,),
            obs_dtype="float32",
            action_space=Discrete(4),
            max_episode_steps=max_episode_steps,
            obs_low=OBS_LOW,
            obs_high=OBS_HIGH,
        )
        self.cache_key = (
            f"{ENV_ID} size={SIZE} max_speed={MAX_SPEED} dt={DT} acceleration={ACCELERATION} "
            f"tolerance={GOAL_TOLERANCE} limit={max_episode_steps}"
        )

    def reset(self, key: jax.Array) -> tuple[RoboParkingState, TimeStep]:
        position = jax.random.uniform(key, (2,), jnp.float32, 0.0, SIZE)
        obs = jnp.concatenate([position, jnp.zeros(2, jnp.float32)])
        false = jnp.zeros((), bool)
        ts = TimeStep(obs, jnp.zeros((), jnp.float32), false, false, obs, {})
        return RoboParkingState(obs, jnp.zeros((), jnp.int32)), ts

    def step(
        self, key: jax.Array, state: RoboParkingState, action: jax.Array
    ) -> tuple[RoboParkingState, TimeStep]:
        obs = dynamics(state.obs, action)
        distance = jnp.linalg.norm(obs)
        terminated = distance < GOAL_TOLERANCE
        time = state.time + 1
        truncated = ~terminated & (time >= self.max_episode_steps)
        ts = TimeStep(obs, -distance, terminated, truncated, obs, {})
        return auto_reset(self, key, RoboParkingState(obs, time), ts)


def dynamics(obs: jax.Array, action: jax.Array) -> jax.Array:
    """One step of the robot: `[4]` state and scalar action -> `[4]` next state."""
    position, velocity = obs[:2], obs[2:]
    acceleration = jnp.float32(ACCELERATION * DT) * jnp.asarray(DIRECTIONS)[action]
    velocity = jnp.clip(velocity + acceleration, -MAX_SPEED, MAX_SPEED)
    position = position + jnp.float32(DT) * velocity
    hit_wall = (position < 0.0) | (position > SIZE)
    position = jnp.clip(position, 0.0, SIZE)
    velocity = jnp.where(hit_wall, 0.0, velocity)
    return jnp.concatenate([position, velocity])


def register_gymnasium_env() -> None:
    """Register `RoboParkingEnv` with gymnasium as `bellman/RoboParking-v0` (idempotent)."""
    if GYMNASIUM_ID not in gym.registry:
        gym.register(
            id=GYMNASIUM_ID,
            entry_point="bellman.envs.roboparking:RoboParkingEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
        )
