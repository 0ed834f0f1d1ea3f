"""Tabular TD learning: TD(0) prediction, Q-learning (Watkins, 1989), SARSA, Expected SARSA, and
Dyna-Q (Sutton, 1990), Q-learning that also plans with a model it learns.

Sutton & Barto (2018), chapter 6, with a table indexed by state and action and step size alpha:

    TD(0):           V(S) <- V(S) + alpha [R + gamma V(S') - V(S)]                        (6.2)
    SARSA:           Q(S,A) <- Q(S,A) + alpha [R + gamma Q(S',A') - Q(S,A)]                (6.7)
    Q-learning:      Q(S,A) <- Q(S,A) + alpha [R + gamma max_a Q(S',a) - Q(S,A)]           (6.8)
    Expected SARSA:  Q(S,A) <- Q(S,A) + alpha [R + gamma sum_a pi(a|S') Q(S',a) - Q(S,A)]  (6.9)

Dyna-Q (chapter 8, the tabular Dyna-Q box), after each real step (S, A, R, S'):

    (d) direct RL:   Q-learning's update (6.8) on the real transition
    (e) model:       Model(S, A) <- R, S'      (the last outcome seen: deterministic envs)
    (f) planning, n times (`planning_steps`):
          S <- a random previously observed state
          A <- a random action previously taken in S
          R, S' <- Model(S, A)
          Q(S,A) <- Q(S,A) + alpha [R + gamma max_a Q(S',a) - Q(S,A)]

Dyna-Q+ (section 8.3, `kappa` > 0) plans with R + kappa sqrt(tau), tau the real steps since
(S, A) was last tried, and lets planning pick any action of an observed state: an untried one is
modelled as leading back to S with reward 0. With n = 0 Dyna-Q is Q-learning.

Behaviour is epsilon-greedy in Q (ties broken at random); TD(0) evaluates the equiprobable random
policy. A terminal S' contributes nothing after R; a time-limit cut still bootstraps from S'.
With `objective="cost"` the table holds costs (minus the env's reward), max becomes min and the
greedy policy is the argmin, as in the robotics lecture.

The on-policy runners drive these functions with one-step rollouts (`num_steps` = 1): `act` chooses
A, the env steps, `learn` updates the table, every env step of every seed. SARSA needs A', the
action actually taken next, so its update of (S, A) waits one step, until `act` has chosen A' in
S' with the same table, the textbook's order. Many seeds are vmapped in one program.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
from flax import struct

from bellman import config as cfg
from bellman.contracts import ValueTable
from bellman.envs.spaces import Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.mdp import best, best_action
from bellman.rollout import Rollout

Method = Literal["q-learning", "sarsa", "expected-sarsa", "td0", "dyna-q"]


@dataclass(frozen=True)
class TabularConfig:
    """Settings of the tabular TD methods; the defaults are the textbook's usual ones."""

    STATIC_FLOATS: ClassVar[tuple[str, ...]] = ("kappa",)

    method: Method = "q-learning"
    """Which update: q-learning, sarsa, expected-sarsa, td0 (prediction of the random policy) or
    dyna-q (Q-learning with planning updates from a learned model)."""
    alpha: float = 0.1
    """Step size alpha of the update, in (0, 1]."""
    gamma: float = 0.99
    """Discount factor."""
    epsilon: float = 0.1
    """Exploration rate of the epsilon-greedy behaviour policy (after the decay, if any)."""
    epsilon_decay_steps: int = 0
    """Env steps over which epsilon decays linearly from 1 to `epsilon`; 0: constant epsilon
    (at most 2,147,483,647)."""
    initial_value: float = 0.0
    """Q_0(s, a) (and V_0(s)) of every state and action."""
    objective: Literal["reward", "cost"] = "reward"
    """reward: maximise the env's reward; cost: the table holds costs (minus the reward) and
    the greedy policy minimises them."""
    num_envs: int = 1
    """Parallel environments per seed, whose updates are applied together every step."""
    planning_steps: int = 0
    """Dyna-Q: n, the planning updates from the model after each real step (of all num_envs
    envs); `bellman train dyna-q` sets 5."""
    kappa: float = 0.0
    """Dyna-Q+: the exploration bonus kappa sqrt(tau) on planned rewards (0: Dyna-Q)."""

    @property
    def num_steps(self) -> int:
        """Steps per rollout: tabular methods learn after every env step."""
        return 1

    @property
    def minimize(self) -> bool:
        return self.objective == "cost"

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        cfg.check_fields(
            self,
            {"epsilon_decay_steps": (cfg.INT32_MAX, "bellman counts steps in 32-bit integers")},
        )
        cfg.within(self, 0, 1, "alpha", open_low=True)
        cfg.within(self, 0, 1, "gamma", "epsilon")
        cfg.at_least(self, 0, "epsilon_decay_steps")
        cfg.at_least(self, 1, "num_envs")
        cfg.at_least(self, 0, "planning_steps", "kappa")
        cfg.require(
            self.method == "dyna-q" or (self.planning_steps == 0 and self.kappa == 0.0),
            f"planning_steps and kappa are Dyna-Q's settings; {self.method} does not plan "
            "(train dyna-q)",
        )


Config = TabularConfig
DEFAULT_STEPS = 100_000
EPISODIC = False
"""Every env step is learned from, across episodes (one-step rollouts)."""
evaluation_memory = None


def check_env(config: TabularConfig, spec: EnvSpec) -> None:
    """Raise EnvError unless the env has finitely many states and actions."""
    if spec.num_states is None:
        raise EnvError(
            f"{config.method} needs a finite env (states numbered 0..S-1), but '{spec.id}' "
            f"observes arrays of shape {spec.obs_shape}; try a discretised env such as "
            "PendulumDiscrete-v1, or bellman.envs.discretize.Discretized"
        )
    if not isinstance(spec.action_space, Discrete):
        raise EnvError(
            f"{config.method} needs finitely many actions, but '{spec.id}' has the action space "
            f"{describe(spec.action_space)}"
        )


class Pending(struct.PyTreeNode):
    """SARSA's last transition `[B]`, whose update waits for the next action A'."""

    obs: jax.Array
    action: jax.Array
    cost: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    valid: jax.Array
    """False before the first step."""


class Model(struct.PyTreeNode):
    """Dyna's table model: the last outcome of every tried (s, a), `[S, A]` each."""

    next_state: jax.Array
    reward: jax.Array
    """In the objective's convention (costs for objective="cost")."""
    terminal: jax.Array
    tried: jax.Array
    last_tried: jax.Array
    """The env step (per env) at which (s, a) was last tried, for Dyna-Q+'s tau."""


class TabularState(struct.PyTreeNode):
    q: jax.Array
    """Q(s, a) `[S, A]`, in the objective's convention (costs for objective="cost")."""
    v: jax.Array
    """V(s) `[S]`, learned by TD(0) only."""
    pending: Pending
    model: Model
    steps: jax.Array
    """Env steps taken per env, for the epsilon schedule."""
    updates: jax.Array
    total_updates: int = struct.field(pytree_node=False)


def init(key: jax.Array, config: TabularConfig, spec: EnvSpec, total_updates: int) -> TabularState:
    """Tables filled with `initial_value`."""
    assert spec.num_states is not None and isinstance(spec.action_space, Discrete)
    num_states, num_actions, b = spec.num_states, spec.action_space.n, config.num_envs
    zeros_i, zeros_f, false = (
        jnp.zeros((b,), jnp.int32),
        jnp.zeros((b,), jnp.float32),
        jnp.zeros((b,), bool),
    )
    table = lambda dtype: jnp.zeros((num_states, num_actions), dtype)
    return TabularState(
        q=jnp.full((num_states, num_actions), config.initial_value, jnp.float32),
        v=jnp.full((num_states,), config.initial_value, jnp.float32),
        pending=Pending(zeros_i, zeros_i, zeros_f, zeros_i, false, false, false),
        model=Model(
            table(jnp.int32), table(jnp.float32), table(bool), table(bool), table(jnp.int32)
        ),
        steps=jnp.zeros((), jnp.int32),
        updates=jnp.zeros((), jnp.int32),
        total_updates=total_updates,
    )


def epsilon(config: TabularConfig, state: TabularState) -> jax.Array:
    """The exploration rate now: linear from 1 to `epsilon` over `epsilon_decay_steps`."""
    if config.epsilon_decay_steps == 0:
        return jnp.asarray(config.epsilon, jnp.float32)
    fraction = jnp.minimum(state.steps / config.epsilon_decay_steps, 1.0)
    return 1.0 + fraction * (config.epsilon - 1.0)


def behaviour_probs(config: TabularConfig, state: TabularState, obs: jax.Array) -> jax.Array:
    """pi(a | s) of the behaviour policy, `[B, A]`: epsilon-greedy in Q with ties shared out
    (uniform for TD(0), which evaluates the random policy)."""
    q = state.q[obs]
    num_actions = q.shape[-1]
    uniform = jnp.full_like(q, 1.0 / num_actions)
    if config.method == "td0":
        return uniform
    is_best = q == best(q, config.minimize)[..., None]
    greedy = is_best / is_best.sum(axis=-1, keepdims=True)
    eps = epsilon(config, state)
    return (1.0 - eps) * greedy + eps * uniform


def act(
    config: TabularConfig, spec: EnvSpec, state: TabularState, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, None]:
    """A ~ epsilon-greedy(Q)(. | S) for a batch of states `[B]`."""
    probs = behaviour_probs(config, state, obs)
    action = jax.random.categorical(key, jnp.log(probs)).astype(jnp.int32)
    return action, None


def greedy(config: TabularConfig, spec: EnvSpec, state: TabularState, obs: jax.Array) -> jax.Array:
    """argmax_a Q(S, a) (argmin for costs); ties go to the lowest action index."""
    return best_action(state.q[obs], config.minimize).astype(jnp.int32)


def evaluation_action(
    config: TabularConfig, spec: EnvSpec, state: TabularState, obs: jax.Array, key: jax.Array
) -> jax.Array:
    """The policy whose return a run reports: greedy in Q, or the evaluated random policy for
    TD(0)."""
    if config.method == "td0":
        return act(config, spec, state, obs, key)[0]
    return greedy(config, spec, state, obs)


def values_and_policy(config: TabularConfig, state: TabularState) -> ValueTable:
    """V(s) `[S]` (best_a Q(s, a), or TD(0)'s V) and the greedy policy `[S]` (None for TD(0),
    which learns no policy), to plot."""
    if config.method == "td0":
        return ValueTable(state.v, None, config.minimize)
    q = state.q
    return ValueTable(best(q, config.minimize), best_action(q, config.minimize), config.minimize)


def _cost_or_reward(config: TabularConfig, reward: jax.Array) -> jax.Array:
    return -reward if config.minimize else reward


def _td_update(
    config: TabularConfig,
    q: jax.Array,
    s: jax.Array,
    a: jax.Array,
    target: jax.Array,
    mask: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Q(S,A) <- Q(S,A) + alpha (target - Q(S,A)) for a batch `[B]` (updates of the same (S, A)
    from several envs add up); rows with mask = False are left out. Returns Q and the TD errors."""
    delta = (target - q[s, a]) * mask
    return q.at[s, a].add(config.alpha * delta), delta


def learn(
    config: TabularConfig, spec: EnvSpec, state: TabularState, rollout: Rollout, key: jax.Array
) -> tuple[TabularState, dict[str, jax.Array]]:
    """One TD update per env from a one-step rollout `[1, B]`."""
    s, a, s_next = rollout.obs[0], rollout.action[0], rollout.next_obs[0]
    r = _cost_or_reward(config, rollout.reward[0])
    terminated, truncated = rollout.terminated[0], rollout.truncated[0]
    bootstrap = config.gamma * (1.0 - terminated.astype(jnp.float32))
    q, v, pending = state.q, state.v, state.pending
    everything = jnp.ones_like(terminated)

    model = state.model
    planning: dict[str, jax.Array] = {}
    if config.method == "td0":
        delta = r + bootstrap * v[s_next] - v[s]  # (6.2)
        v = v.at[s].add(config.alpha * delta)
    elif config.method == "dyna-q":
        target = r + bootstrap * best(q[s_next], config.minimize)  # (d) direct RL: (6.8)
        q, delta = _td_update(config, q, s, a, target, everything)
        model = model.replace(  # (e)
            next_state=model.next_state.at[s, a].set(s_next),
            reward=model.reward.at[s, a].set(r),
            terminal=model.terminal.at[s, a].set(terminated),
            tried=model.tried.at[s, a].set(True),
            last_tried=model.last_tried.at[s, a].set(state.steps + 1),
        )
        q, planning = plan(config, q, model, state.steps + 1, key)  # (f)
    elif config.method == "q-learning":
        target = r + bootstrap * best(q[s_next], config.minimize)  # (6.8)
        q, delta = _td_update(config, q, s, a, target, everything)
    elif config.method == "expected-sarsa":
        expected = jnp.sum(behaviour_probs(config, state, s_next) * q[s_next], axis=-1)
        q, delta = _td_update(config, q, s, a, r + bootstrap * expected, everything)  # (6.9)
    else:
        # SARSA (6.7) for the previous transition: A' is the action `act` just took in S', unless
        # that episode ended; a cut episode bootstraps from an action drawn in its final state
        p = pending
        drawn, _ = act(config, spec, state, p.next_obs, key)
        ended = p.terminated | p.truncated
        a_next = jnp.where(ended, drawn, a)
        p_bootstrap = config.gamma * (1.0 - p.terminated.astype(jnp.float32))
        target = p.cost + p_bootstrap * q[p.next_obs, a_next]
        q, delta = _td_update(config, q, p.obs, p.action, target, p.valid)
        pending = Pending(s, a, r, s_next, terminated, truncated, jnp.ones_like(p.valid))

    new_state = state.replace(
        q=q, v=v, pending=pending, model=model, steps=state.steps + 1, updates=state.updates + 1
    )
    metrics = {
        **planning,
        "td_error": jnp.mean(jnp.abs(delta)),
        "epsilon": epsilon(config, state),
        "value_visited": jnp.mean(best(q[s], config.minimize))
        if config.method != "td0"
        else jnp.mean(v[s]),
    }
    return new_state, metrics


def plan(
    config: TabularConfig, q: jax.Array, model: Model, now: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Dyna's planning: `planning_steps` Q-learning updates on transitions drawn from `model`
    (step (f)); `now` is the env steps taken, for Dyna-Q+'s tau. Returns Q and metrics."""
    observed = model.tried.any(axis=1)
    dyna_plus = config.kappa > 0.0
    sign = -1.0 if config.minimize else 1.0

    def update(i: jax.Array, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        q, total = carry
        state_key, action_key = jax.random.split(jax.random.fold_in(key, i))
        s = jax.random.categorical(state_key, jnp.where(observed, 0.0, -jnp.inf))
        choices = jnp.ones_like(model.tried[s]) if dyna_plus else model.tried[s]
        a = jax.random.categorical(action_key, jnp.where(choices, 0.0, -jnp.inf))
        tried = model.tried[s, a]
        s_next = jnp.where(tried, model.next_state[s, a], s)  # Dyna-Q+: untried -> back to S
        r = jnp.where(tried, model.reward[s, a], 0.0)
        if dyna_plus:
            tau = (now - model.last_tried[s, a]).astype(jnp.float32)
            r = r + sign * config.kappa * jnp.sqrt(tau)
        bootstrap = config.gamma * (1.0 - (tried & model.terminal[s, a]).astype(jnp.float32))
        target = r + bootstrap * best(q[s_next], config.minimize)
        delta = target - q[s, a]
        return q.at[s, a].add(config.alpha * delta), total + jnp.abs(delta)

    n = config.planning_steps
    q, total = jax.lax.fori_loop(0, n, update, (q, jnp.zeros((), jnp.float32)))
    return q, {
        "planning_td_error": total / max(n, 1),
        "model_pairs": model.tried.sum().astype(jnp.float32),
    }
