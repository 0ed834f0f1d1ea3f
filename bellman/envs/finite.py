"""Any `FiniteMDP` as an environment: in JAX (compiled backend) and as a gymnasium env (its twin).

Observations are state indices (a scalar int32; networks one-hot them, tabular methods index
their tables with them). A step samples s' ~ P[s, a] and pays R[s, a, s'] (minus the cost for a cost
MDP: an environment's reward is always maximised); reaching a terminal state terminates the episode,
the MDP's time limit truncates it. bellman's textbook MDPs are registered with gymnasium as
`bellman/<Name>-v0` (`gymnasium.make("bellman/Maze-v0")` after `import bellman`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman import mdp as mdp_lib
from bellman.envs import grids
from bellman.envs.core import TimeStep, auto_reset
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.mdp import FiniteMDP

MDPS: dict[str, Callable[[], FiniteMDP]] = {
    "GridWorld-v0": grids.gridworld,
    "GridWorld5x5-v0": grids.gridworld_5x5,
    "Maze-v0": grids.maze,
    "CliffWalking-v0": grids.cliff_walking,
    "WindyGridWorld-v0": grids.windy_gridworld,
    "DynaMaze-v0": grids.dyna_maze,
    "GamblersProblem-v0": grids.gamblers_problem,
    "JacksCarRental-v0": grids.jacks_car_rental,
}
"""bellman's own finite MDPs; each also runs as a JAX env and as gymnasium's `bellman/<id>`."""

TOY_TEXT = ("FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4")
"""gymnasium's toy-text envs, which publish their transition table: bellman reads it into a
FiniteMDP, so these also train on the compiled backend (and are solved exactly)."""


def toy_text_mdp(env_id: str, gamma: float = 0.99) -> FiniteMDP:
    env = gym.make(env_id)
    try:
        return mdp_lib.from_gymnasium(env, gamma)
    finally:
        env.close()


def gymnasium_id(env_id: str) -> str:
    """The gymnasium id of a finite env: `bellman/<id>` for bellman's own, else the id itself."""
    return f"bellman/{env_id}" if env_id in MDPS else env_id


class FiniteEnvState(struct.PyTreeNode):
    state: jax.Array
    """`[]` int32 current state."""
    time: jax.Array
    """`[]` int32 steps taken in the episode."""


class FiniteMDPEnv:
    """A FiniteMDP as a JAX env (bellman's functional protocol, with auto-reset)."""

    def __init__(self, mdp: FiniteMDP, env_id: str | None = None):
        self.mdp = mdp
        env_id = env_id or mdp.name
        self.spec = EnvSpec(
            id=env_id,
            obs_shape=(),
            obs_dtype="int32",
            action_space=Discrete(mdp.num_actions),
            max_episode_steps=mdp.max_episode_steps,
            num_states=mdp.num_states,
        )
        # s' ~ P[s, a] by inverse CDF: the number of cumulative probabilities below u ~ U[0, 1)
        self._cdf = jnp.asarray(np.cumsum(np.asarray(mdp.transitions, np.float64), axis=-1))
        self._rewards = mdp.env_rewards()
        self._start_cdf = jnp.asarray(np.cumsum(np.asarray(mdp.initial_distribution, np.float64)))
        digest = hashlib.sha256()
        for array in (mdp.transitions, mdp.rewards, mdp.terminal, mdp.initial_distribution):
            digest.update(np.asarray(array).tobytes())
        self.cache_key = f"finite-mdp {env_id} {mdp.max_episode_steps} {digest.hexdigest()}"
        self.layout = mdp.layout
        """Where each state sits on a grid (None for MDPs without one), to plot values."""
        self.action_labels = tuple(mdp.action_label(a) for a in range(mdp.num_actions))

    def _sample(self, key: jax.Array, cdf: jax.Array) -> jax.Array:
        u = jax.random.uniform(key) * cdf[-1]
        return jnp.minimum(jnp.sum(cdf <= u), cdf.shape[-1] - 1).astype(jnp.int32)

    def reset(self, key: jax.Array) -> tuple[FiniteEnvState, TimeStep]:
        s = self._sample(key, self._start_cdf)
        false = jnp.zeros((), bool)
        ts = TimeStep(s, jnp.zeros((), jnp.float32), false, false, s, {})
        return FiniteEnvState(s, jnp.zeros((), jnp.int32)), ts

    def step(
        self, key: jax.Array, state: FiniteEnvState, action: jax.Array
    ) -> tuple[FiniteEnvState, TimeStep]:
        step_key, reset_key = jax.random.split(key)
        s, a = state.state, action.astype(jnp.int32)
        s_next = self._sample(step_key, self._cdf[s, a])
        terminated = self.mdp.terminal[s_next]
        time = state.time + 1
        limit = self.spec.max_episode_steps
        truncated = ~terminated & (time >= limit) if limit else jnp.zeros((), bool)
        ts = TimeStep(s_next, self._rewards[s, a, s_next], terminated, truncated, s_next, {})
        next_state = FiniteEnvState(s_next, time)
        return auto_reset(self, reset_key, next_state, ts)


class FiniteMDPGymEnv(gym.Env):
    """A FiniteMDP as a gymnasium env, in numpy: the twin of `FiniteMDPEnv`.

    Render modes: "ansi" (the grid as text) and "rgb_array" (cells coloured, the agent as a dot)
    for grid worlds.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012 (gymnasium)

    def __init__(self, mdp: FiniteMDP | str, render_mode: str | None = None):
        if isinstance(mdp, str):
            mdp = MDPS[mdp]()
        self.mdp = mdp
        self.observation_space = gym.spaces.Discrete(mdp.num_states)
        self.action_space = gym.spaces.Discrete(mdp.num_actions)
        self.render_mode = render_mode
        self._p = np.asarray(mdp.transitions, np.float64)
        self._p /= self._p.sum(axis=-1, keepdims=True)
        self._r = np.asarray(mdp.env_rewards(), np.float64)
        self._terminal = np.asarray(mdp.terminal)
        self._start = np.asarray(mdp.initial_distribution, np.float64)
        self._start /= self._start.sum()
        self.state = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(len(self._start), p=self._start))
        return self.state, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        s, a = self.state, int(action)
        s_next = int(self.np_random.choice(self.mdp.num_states, p=self._p[s, a]))
        self.state = s_next
        return s_next, float(self._r[s, a, s_next]), bool(self._terminal[s_next]), False, {}

    def render(self) -> Any:
        layout = self.mdp.layout
        if self.render_mode is None or layout is None:
            return None
        if self.render_mode == "ansi":
            rows = []
            for r in range(layout.shape[0]):
                row = []
                for c in range(layout.shape[1]):
                    if (r, c) in layout.blocked:
                        row.append("#")
                    elif layout.cells[self.state] == (r, c):
                        row.append("@")
                    else:
                        row.append(layout.mark((r, c))[:1] or ".")
                rows.append(" ".join(row))
            return "\n".join(rows) + "\n"
        return _draw_grid(self.mdp, self.state)


MARK_COLOURS = {
    "G": (76, 175, 80),
    "R": (229, 57, 53),
    "C": (121, 85, 72),
    "H": (66, 66, 66),
    "T": (189, 189, 189),
    "S": (144, 202, 249),
}


def _draw_grid(mdp: FiniteMDP, state: int, cell: int = 48) -> np.ndarray:
    """An RGB picture of a grid world with the agent in `state`."""
    layout = mdp.layout
    assert layout is not None
    rows, cols = layout.shape
    image = np.full((rows * cell, cols * cell, 3), 250, np.uint8)
    for r in range(rows):
        for c in range(cols):
            block = image[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
            if (r, c) in layout.blocked:
                block[:] = (33, 33, 33)
            else:
                block[:] = MARK_COLOURS.get(layout.mark((r, c))[:1], (250, 250, 250))
            block[0, :] = block[:, 0] = 200  # grid lines
    r, c = layout.cells[state]
    yy, xx = np.mgrid[:cell, :cell]
    dot = (yy - cell / 2) ** 2 + (xx - cell / 2) ** 2 <= (cell / 3) ** 2
    image[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell][dot] = (30, 90, 200)
    return image


def register_gymnasium_envs() -> None:
    """Register bellman's finite MDPs with gymnasium as `bellman/<id>` (idempotent)."""
    for env_id in MDPS:
        name = gymnasium_id(env_id)
        if name not in gym.registry:
            gym.register(
                id=name,
                entry_point="bellman.envs.finite:FiniteMDPGymEnv",
                kwargs={"mdp": env_id},
                max_episode_steps=_LIMITS.get(env_id),
            )


_LIMITS = {
    "GridWorld-v0": 200,
    "GridWorld5x5-v0": 100,
    "Maze-v0": 100,
    "CliffWalking-v0": 1000,
    "WindyGridWorld-v0": 1000,
    "DynaMaze-v0": 2000,
    "JacksCarRental-v0": 100,
}
"""The time limits of `MDPS` (the `max_episode_steps` each builder sets), known without building
the MDPs, so that registering costs nothing at import; a test checks they agree."""
