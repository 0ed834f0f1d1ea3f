"""Replay memory (Lin, 1992; Mnih et al., 2015): a ring buffer of transitions as a pytree, with pure
`init`, `add` and `sample` functions that run inside `jax.jit` (and under `vmap` over seeds).

Layout. Each of the E parallel envs has its own ring of C slots, `[E, C, ...]`. A slot holds one
observation (for stacked pixel frames, only its newest frame) and, once the agent has acted on
it, the action, reward and the two end flags of the step taken from it. The next observation of a
transition is the observation in the following slot, so each observation is stored once:

    slot:    i          i+1        i+2 ...
    holds:   s_t, a_t,  s_{t+1},   ...               (r_t, terminated_t, truncated_t in slot i)

When an episode ends at step t, s_{t+1} is the true final observation (kept for truncation's
bootstrap) and gets a slot of its own, not acted on; the reset observation starts the next slot,
marked as an episode start. Frame stacks are rebuilt at sampling from the slots before i, the first
frame of the episode standing in for frames before it (gymnasium's FrameStackObservation pads the
same way), so 1,000,000 Atari transitions take 1,000,000 x 84 x 84 bytes (7.1 GB), not four or
eight times that.

Sampling draws transitions whose whole story is still in the ring (its n steps acted on, its
frames not overwritten) uniformly, or in proportion to priority^alpha (Schaul et al., 2016) with
importance-sampling weights. Uniform draws are by rejection: slots drawn uniformly from those ever
written, the few that cannot be sampled (an episode's final observation, the newest slot) drawn
again, so a draw costs the same with a 1,000,000-slot ring as with a small one. Prioritised draws
are exact draws by `draw` (one pass of sums over the ring per draw).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from bellman.ops import targets


class ReplayBuffer(struct.PyTreeNode):
    """E rings of C slots. Shapes: `frames` `[E, C, *frame_shape]`, the rest `[E, C]`."""

    frames: jax.Array
    """The observation of each slot (its newest frame when observations are frame stacks)."""
    action: jax.Array
    """`[E, C, *action_shape]` the action taken in the slot's observation."""
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    acted: jax.Array
    """The slot's action, reward and flags are filled in (its next observation is stored)."""
    acted_at: jax.Array
    """The step (`added` at the time) at which the slot was acted on."""
    start: jax.Array
    """The slot's observation is the first of an episode: frame stacks do not reach before it."""
    priority: jax.Array
    """Priority of the slot's transition, for prioritised replay (0 until acted on)."""
    max_priority: jax.Array
    """`[]` the largest priority so far, given to new transitions."""
    head: jax.Array
    """`[E]` the slot of each env's newest observation (the one to act on next)."""
    filled: jax.Array
    """`[E]` slots written so far (at most C): slots beyond them have never held anything."""
    added: jax.Array
    """`[]` steps added so far (per env)."""
    keep: int = struct.field(pytree_node=False, default=1)
    """Transitions kept per env: only the newest `keep` are sampled."""
    frame_stack: int = struct.field(pytree_node=False, default=1)
    """Observations are the last `frame_stack` frames along their first axis (Atari), else 1."""


class Batch(struct.PyTreeNode):
    """Sampled transitions `[B, ...]`, with n-step returns already summed."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    """sum_{k<m} gamma^k r_{t+k}, m = n or fewer if the episode ended first."""
    discount: jax.Array
    """gamma^m (1 - terminated): the weight of the bootstrap value of `next_obs`."""
    next_obs: jax.Array
    """s_{t+m}: the true next observation (the final one where the episode ended)."""
    weight: jax.Array
    """Importance-sampling weight (1 for uniform sampling)."""
    index: jax.Array
    """`[B, 2]` (env, slot) of each transition, to update its priority."""


def transitions_per_env(buffer_size: int, num_envs: int) -> int:
    """Transitions each env's ring keeps, for a buffer of `buffer_size` over `num_envs` envs."""
    return max(1, -(-buffer_size // num_envs))


def slots_per_env(buffer_size: int, num_envs: int, frame_stack: int = 1) -> int:
    """Slots of each ring: the transitions kept, the newest observation, a final observation and
    the older frames the oldest kept transition's frame stack reaches back to."""
    return transitions_per_env(buffer_size, num_envs) + frame_stack + 1


def init(
    buffer_size: int,
    num_envs: int,
    obs_example: jax.Array,
    action_example: jax.Array,
    frame_stack: int = 1,
) -> ReplayBuffer:
    """An empty buffer keeping the newest `buffer_size` transitions (split evenly over the envs);
    `obs_example` and `action_example` are one env's observation and action."""
    c = slots_per_env(buffer_size, num_envs, frame_stack)
    frame = obs_example[-1] if frame_stack > 1 else obs_example
    zeros = lambda x: jnp.zeros((num_envs, c, *x.shape), x.dtype)
    flags = jnp.zeros((num_envs, c), bool)
    return ReplayBuffer(
        frames=zeros(frame),
        action=zeros(action_example),
        reward=jnp.zeros((num_envs, c), jnp.float32),
        terminated=flags,
        truncated=flags,
        acted=flags,
        acted_at=jnp.zeros((num_envs, c), jnp.int32),
        start=flags,
        priority=jnp.zeros((num_envs, c), jnp.float32),
        max_priority=jnp.ones((), jnp.float32),
        head=jnp.zeros((num_envs,), jnp.int32),
        filled=jnp.zeros((num_envs,), jnp.int32),
        added=jnp.zeros((), jnp.int32),
        keep=transitions_per_env(buffer_size, num_envs),
        frame_stack=frame_stack,
    )


def _newest_frame(buffer: ReplayBuffer, obs: jax.Array) -> jax.Array:
    """`[E, *obs_shape]` -> the part of each observation stored in a slot."""
    return obs[:, -1] if buffer.frame_stack > 1 else obs


def start(buffer: ReplayBuffer, obs: jax.Array) -> ReplayBuffer:
    """Store the first observations `[E, *obs_shape]` of a run (or of a resumed host run, whose
    envs restart): each env's next slot becomes an episode start."""
    e = jnp.arange(buffer.head.shape[0])
    slot = (buffer.head + buffer.added.astype(bool)) % buffer.frames.shape[1]
    return buffer.replace(
        frames=buffer.frames.at[e, slot].set(_newest_frame(buffer, obs)),
        start=buffer.start.at[e, slot].set(True),
        acted=buffer.acted.at[e, slot].set(False),
        priority=buffer.priority.at[e, slot].set(0.0),
        head=slot,
        filled=jnp.maximum(buffer.filled, slot + 1),
    )


def add(
    buffer: ReplayBuffer,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    final_obs: jax.Array,
    next_obs: jax.Array,
) -> ReplayBuffer:
    """Record one step of every env `[E, ...]`: the action taken in each env's newest observation,
    its reward and flags, the observation reached (`final_obs`) and, where the episode ended, the
    reset observation (`next_obs`) in a slot of its own."""
    c = buffer.frames.shape[1]
    e = jnp.arange(buffer.head.shape[0])
    p = buffer.head
    done = terminated | truncated
    # the step from slot p
    buffer = buffer.replace(
        action=buffer.action.at[e, p].set(action),
        reward=buffer.reward.at[e, p].set(reward.astype(jnp.float32)),
        terminated=buffer.terminated.at[e, p].set(terminated),
        truncated=buffer.truncated.at[e, p].set(truncated),
        acted=buffer.acted.at[e, p].set(True),
        acted_at=buffer.acted_at.at[e, p].set(buffer.added),
        priority=buffer.priority.at[e, p].set(buffer.max_priority),
    )
    # slot p+1: the observation reached; slot p+2: the reset observation, if the episode ended
    reached, reset = (p + 1) % c, (p + 2) % c
    reached_frame = _newest_frame(buffer, final_obs)
    reset_frame = _newest_frame(buffer, next_obs)

    head = jnp.where(done, reset, reached)  # slot p+2 after an episode end, else p+1

    def write(x: jax.Array, at_reached: Any, at_reset: Any) -> jax.Array:
        """x with `at_reached` in slot p+1 and, where the episode ended, `at_reset` in slot p+2
        (elsewhere slot p+1 is written twice). Nothing is read from x: a read of x around the
        writes makes XLA copy the whole ring."""
        x = x.at[e, reached].set(at_reached)
        shape = done.shape + (1,) * (x.ndim - 2)
        at_reached, at_reset = jnp.asarray(at_reached), jnp.asarray(at_reset)
        return x.at[e, head].set(jnp.where(done.reshape(shape), at_reset, at_reached))

    return buffer.replace(
        frames=write(buffer.frames, reached_frame, reset_frame),
        acted=write(buffer.acted, False, False),
        start=write(buffer.start, False, True),
        priority=write(buffer.priority, 0.0, 0.0),
        head=head,
        filled=jnp.maximum(buffer.filled, head + 1),
        added=buffer.added + 1,
    )


def sampleable(buffer: ReplayBuffer, n_step: int) -> jax.Array:
    """`[E, C]` bool: slots whose transition can be sampled (`sampleable_at` at every slot)."""
    e, c = buffer.acted.shape
    env = jnp.repeat(jnp.arange(e, dtype=jnp.int32), c)
    slot = jnp.tile(jnp.arange(c, dtype=jnp.int32), e)
    return sampleable_at(buffer, env, slot, n_step).reshape(e, c)


def sampleable_at(buffer: ReplayBuffer, env: jax.Array, slot: jax.Array, n_step: int) -> jax.Array:
    """`[B]` bool: whether the transitions at (env, slot) `[B]` can be sampled: among the newest
    `keep` transitions, its first n steps (up to the episode's end) acted on, its frames still
    stored."""
    c = buffer.frames.shape[1]
    at = lambda x, k: x[env, (slot + k) % c]
    ok = at(buffer.acted, 0)
    running = ~(at(buffer.terminated, 0) | at(buffer.truncated, 0))
    for k in range(1, n_step):
        ok = ok & (~running | at(buffer.acted, k))
        running = running & ~(at(buffer.terminated, k) | at(buffer.truncated, k))
    newest = at(buffer.acted_at, 0) >= buffer.added - buffer.keep
    age = (slot - buffer.head[env] - 1) % c
    return ok & newest & (age >= buffer.frame_stack - 1)


CANDIDATES = 32
"""Candidates per uniform draw at most (see `draw_uniform`)."""


def draw_uniform(
    buffer: ReplayBuffer, key: jax.Array, num: int, n_step: int = 1
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`num` (env, slot) pairs drawn uniformly, with replacement, among the sampleable slots, and
    whether each was found.

    Rejection sampling: each draw takes a slot uniform over the slots ever written (`filled`) and
    draws again while that slot cannot be sampled, up to `CANDIDATES` times; the slot kept is
    uniform over the sampleable slots. Only the draws still unfinished are drawn again, and the
    rounds stop once every draw has found its slot: with a few unsampleable slots (episode ends,
    the newest slot) a round or two. The cost does not grow with the ring's capacity. A draw finds
    none only if all its candidates fall on unsampleable slots, a chance below (1 - p)^32 for a
    fraction p of sampleable slots: below 1e-9 even for one-step episodes (p = 1/2); such a draw
    is returned with found = False (the sampler gives it weight 0)."""
    counts = buffer.filled
    ends = jnp.cumsum(counts)

    def candidates(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        u = jax.random.randint(key, (num,), 0, jnp.maximum(ends[-1], 1))
        env = jnp.searchsorted(ends, u, side="right").astype(jnp.int32)
        slot = (u - (ends[env] - counts[env])).astype(jnp.int32)
        return env, slot, sampleable_at(buffer, env, slot, n_step)

    Round = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]

    def unfinished(carry: Round) -> jax.Array:
        found, round_ = carry[2], carry[4]
        return (round_ < CANDIDATES) & ~jnp.all(found)

    def redraw(carry: Round) -> Round:
        env, slot, found, key, round_ = carry
        key, draw_key = jax.random.split(key)
        new_env, new_slot, ok = candidates(draw_key)
        return (
            jnp.where(found, env, new_env),
            jnp.where(found, slot, new_slot),
            found | ok,
            key,
            round_ + 1,
        )

    key, first_key = jax.random.split(key)
    env, slot, found = candidates(first_key)
    env, slot, found, _, _ = jax.lax.while_loop(
        unfinished, redraw, (env, slot, found, key, jnp.ones((), jnp.int32))
    )
    return env, slot, found


def _stack(buffer: ReplayBuffer, env: jax.Array, slot: jax.Array) -> jax.Array:
    """The observation of (env, slot) `[B]`: the slot's frame, or the frame stack ending there
    with the episode's first frame standing in for frames before the episode started."""
    if buffer.frame_stack == 1:
        return buffer.frames[env, slot]
    c, k = buffer.frames.shape[1], buffer.frame_stack
    position = jnp.arange(k)[None, :]  # oldest first; position k - 1 is the slot itself
    slots = (slot[:, None] - (k - 1) + position) % c  # [B, k]
    starts = buffer.start[env[:, None], slots]
    # positions before the newest episode start in the window repeat that start's frame
    newest_start = jnp.max(jnp.where(starts, position, -1), axis=1, keepdims=True)
    chosen = jnp.take_along_axis(slots, jnp.maximum(position, newest_start), axis=1)
    return buffer.frames[env[:, None], chosen]  # [B, k, *frame_shape]


def sample(
    buffer: ReplayBuffer,
    key: jax.Array,
    batch_shape: tuple[int, ...],
    n_step: int = 1,
    gamma: float = 0.99,
    alpha: jax.Array | float | None = None,
    beta: jax.Array | float = 1.0,
    reward_clip: float | None = None,
) -> Batch:
    """Transitions `[*batch_shape]` drawn with replacement, uniformly (`alpha` None) or with
    probability priority^alpha / sum (prioritised replay, with weights (N P(i))^-beta / max;
    `alpha` may be traced, and 0 draws uniformly from the same distribution).

    Draw all the batches of several gradient steps at once (`batch_shape` = (steps, B)) only
    with uniform sampling: priorities change after every step. `reward_clip` clips each reward
    to [-clip, clip] before the n-step sum (Atari's learning signal). Sample only once
    `sampleable(buffer, n_step)` has some slot (after the learning-start period).
    """
    c = buffer.frames.shape[1]
    num = math.prod(batch_shape)
    if alpha is not None:
        ok = sampleable(buffer, n_step)
        weights = jnp.where(ok, buffer.priority, 0.0) ** alpha
        flat = weights.reshape(-1)
        index, weight_sum = draw(flat, key, num)
        env, slot = index // c, index % c
    else:
        env, slot, found = draw_uniform(buffer, key, num, n_step)

    # n-step return: r_t + gamma r_{t+1} + ... until n steps or the episode's end
    slots = (slot[None, :] + jnp.arange(n_step)[:, None]) % c  # [n, B]
    rewards = buffer.reward[env[None, :], slots]
    if reward_clip is not None:
        rewards = jnp.clip(rewards, -reward_clip, reward_clip)
    terminated = buffer.terminated[env[None, :], slots]
    ended = terminated | buffer.truncated[env[None, :], slots]
    total, discount = targets.n_step_return(rewards, ended, gamma)
    first = jnp.ones_like(ended[:1])
    summed = jnp.cumprod(jnp.concatenate([first, ~ended[:-1]]), axis=0).astype(bool)  # [n, B]
    terminal = jnp.any(terminated & summed, axis=0)
    next_slot = (slot + jnp.sum(summed, axis=0)) % c

    if alpha is not None:
        count = jnp.sum(ok)
        p_min = jnp.min(jnp.where(ok, weights, jnp.inf)) / weight_sum
        weight = (count * flat[index] / weight_sum) ** (-beta) / (count * p_min) ** (-beta)
    else:
        weight = found.astype(jnp.float32)

    shaped = lambda x: x.reshape((*batch_shape, *x.shape[1:]))
    return Batch(
        obs=shaped(_stack(buffer, env, slot)),
        action=shaped(buffer.action[env, slot]),
        reward=shaped(total),
        discount=shaped(discount * (1.0 - terminal.astype(jnp.float32))),
        next_obs=shaped(_stack(buffer, env, next_slot)),
        weight=shaped(weight.astype(jnp.float32)),
        index=shaped(jnp.stack([env, slot], axis=-1)),
    )


FANOUT = 64
"""Children per node of the summation tree `draw` builds."""
MANY_DRAWS = 1024
"""From this many draws at once, `draw` searches a cumulative sum instead of descending a tree."""


def _tree(weights: jax.Array) -> list[jax.Array]:
    """Sums of `weights` by groups of FANOUT, of those sums, ...: the levels of a summation tree,
    leaves first, each padded with zeros to a multiple of FANOUT; the last has FANOUT entries."""
    levels = []
    level = weights
    while True:
        level = jnp.pad(level, (0, (-level.shape[0]) % FANOUT))
        levels.append(level)
        if level.shape[0] == FANOUT:
            return levels
        level = level.reshape(-1, FANOUT).sum(axis=1)


def _descend(levels: list[jax.Array], u: jax.Array) -> jax.Array:
    """The leaf where the running sum of the weights passes `u` (0 <= u < total)."""
    index = jnp.zeros((), jnp.int32)
    for level in reversed(levels):
        children = jax.lax.dynamic_slice(level, (index * FANOUT,), (FANOUT,))
        before = jnp.cumsum(children) - children  # the sum of the children left of each
        inside = (before <= u) & (children > 0)  # children whose interval may hold u
        child = FANOUT - 1 - jnp.argmax(inside[::-1])  # the last of them: u lies in its interval
        u = u - before[child]
        index = index * FANOUT + child.astype(jnp.int32)
    return index


def draw(weights: jax.Array, key: jax.Array, num: int) -> tuple[jax.Array, jax.Array]:
    """`num` indices drawn with replacement with probability weights / sum, and the sum.

    Exact either way: for a few draws, through a summation tree built on the fly (one pass of sums
    over the weights, then `FANOUT` numbers per level per draw; XLA's cumulative sum over all the
    weights costs several times more on a CPU); for many draws at once (the minibatches of a whole
    learning phase), by binary search in that cumulative sum."""
    if num >= MANY_DRAWS:
        total = jnp.sum(weights)
        index = jax.random.choice(key, weights.shape[0], (num,), p=weights / total)
        return index.astype(jnp.int32), total
    levels = _tree(weights)
    total = jnp.sum(levels[-1])
    u = jax.random.uniform(key, (num,), maxval=total)
    return jax.vmap(_descend, in_axes=(None, 0))(levels, u), total


def update_priorities(
    buffer: ReplayBuffer, index: jax.Array, priority: jax.Array, eps: float = 1e-6
) -> ReplayBuffer:
    """Set the priorities of the transitions at `index` `[B, 2]` to `priority` `[B]` (|TD error|),
    plus `eps` so that none falls to zero."""
    value = jnp.abs(priority).astype(jnp.float32) + eps
    return buffer.replace(
        priority=buffer.priority.at[index[:, 0], index[:, 1]].set(value),
        max_priority=jnp.maximum(buffer.max_priority, jnp.max(value)),
    )


def size(buffer: ReplayBuffer) -> jax.Array:
    """Transitions stored over all envs: the newest `keep` of each env at most (from the
    counters, without a pass over the ring)."""
    return jnp.minimum(buffer.added, buffer.keep) * buffer.head.shape[0]


def to_episodes(buffer: ReplayBuffer) -> list[dict[str, Any]]:
    """The transitions one seed's replay memory holds (numpy or JAX arrays, no seed axis), as
    episodes in the order each env stored them, env after env: dicts of `observations`
    `[T + 1, ...]`, `actions`, `rewards`, `terminations` and `truncations` `[T]`.

    Each ring is read from its oldest slot to its newest. An episode ends at a step that
    terminated or was truncated; a stretch cut by the ring (its start overwritten) begins where
    the ring does, and an episode still running when it was stored last (at the newest slot, or
    where a resumed run restarted its envs) ends there, marked truncated: a cut of the data,
    after which bootstrapping from the last observation is right, as after a time limit. Frame
    stacks (Atari) are not rebuilt: such a memory is refused (ValueError)."""
    import numpy as np

    if buffer.frame_stack > 1:
        raise ValueError("a replay memory of stacked frames is not exported")
    arrays = {
        name: np.asarray(getattr(buffer, name))
        for name in ("frames", "action", "reward", "terminated", "truncated", "acted")
    }
    head, filled = np.asarray(buffer.head), np.asarray(buffer.filled)
    capacity = arrays["frames"].shape[1]
    episodes: list[dict[str, Any]] = []
    for e in range(arrays["frames"].shape[0]):
        ring = {name: x[e] for name, x in arrays.items()}
        if filled[e] < capacity:
            order = np.arange(int(filled[e]))
        else:  # the oldest slot follows the newest
            order = (int(head[e]) + 1 + np.arange(capacity)) % capacity
        steps: list[int] = []
        for slot in map(int, order):
            if not ring["acted"][slot]:  # a final observation, or the newest one: the next
                _close(ring, steps, slot, True, episodes)  # observation of the steps so far
            else:
                steps.append(slot)
                if ring["terminated"][slot] or ring["truncated"][slot]:
                    _close(ring, steps, (slot + 1) % capacity, False, episodes)
    return episodes


def _close(
    ring: dict[str, Any], steps: list[int], last: int, cut: bool, out: list[dict[str, Any]]
) -> None:
    """Append the slots `steps` of one ring as an episode whose last next observation is in slot
    `last` (marked truncated where `cut`), and empty `steps`."""
    import numpy as np

    if not steps:
        return
    truncations = ring["truncated"][steps].copy()
    truncations[-1] |= cut
    out.append(
        {
            "observations": np.concatenate([ring["frames"][steps], ring["frames"][last][None]]),
            "actions": ring["action"][steps],
            "rewards": ring["reward"][steps],
            "terminations": ring["terminated"][steps].copy(),
            "truncations": truncations,
        }
    )
    steps.clear()
