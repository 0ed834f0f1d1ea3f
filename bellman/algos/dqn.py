"""Deep Q-Networks (Mnih et al., 2013, 2015) with Double DQN, dueling heads, n-step returns and
prioritised replay as options.

The lectures' algorithm, as the off-policy runners drive it:

    initialise replay memory D, Q with weights theta, target Q^ with theta^- = theta   -> `init`
    for each step:
        with probability epsilon a random action, else argmax_a Q(s, a; theta)      -> `act`
        execute it, store (s, a, r, s', terminated, truncated) in D                 -> runner
        every `train_frequency` steps, `gradient_steps` times:
            sample a random minibatch of transitions from D                          -> runner
            y = r + gamma (1 - terminated) max_a' Q^(s', a'; theta^-)               -> `td_target`
            a gradient step on (y - Q(s, a; theta))^2 (or Huber)                      -> `learn`
            every C gradient steps reset Q^ = Q                                      -> `learn`

A time-limit cut (truncation) still bootstraps from s'. Evaluation uses the greedy policy
(`greedy`), collection the epsilon-greedy one, epsilon decaying linearly over the first
`exploration_fraction` of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman import nets
from bellman.buffers import Batch
from bellman.contracts import ReplayLoop
from bellman.envs.spaces import Discrete, EnvSpec, describe
from bellman.errors import EnvError
from bellman.nets import PatchConv, obs_features
from bellman.ops import targets
from bellman.ops.losses import huber

Torso = Literal["auto", "mlp", "nature", "minatar"]


@dataclass(frozen=True)
class DQNConfig(ReplayLoop):
    """DQN's settings; the defaults suit CartPole-v1 with the lecture's network: 10 envs, a
    learning phase of 4 gradient steps every 100 env steps, a 10k replay, the target copied every
    20 gradient steps, epsilon 1 -> 0.05 over half the run."""

    STATIC_FLOATS: ClassVar[tuple[str, ...]] = ("clip_rewards", "eval_epsilon", "max_grad_norm")
    """Float settings compiled into the program, where 0 switches something off: reward
    clipping, the evaluation's exploration, gradient clipping."""

    # the replay loop's settings (`ReplayLoop`, which documents them) for CartPole
    num_envs: int = 10
    buffer_size: int = 10_000
    batch_size: int = 128
    learning_starts: int = 10_000
    train_frequency: int = 10
    gradient_steps: int = 4

    learning_rate: float = 2.5e-4
    """Adam step size."""
    anneal_lr: bool = False
    """Decay the step size linearly to 0 over the run's gradient steps (a steadier final policy
    where a constant step size keeps the greedy policy oscillating)."""
    adam_eps: float = 1e-8
    """Adam's epsilon (the Atari preset uses 1.5e-4, as the Rainbow paper)."""
    target_update_interval: int = 20
    """Gradient steps between target-network updates (C); 1 updates it after every step."""
    tau: float = 1.0
    """Target update theta^- <- tau theta + (1 - tau) theta^-, tau in (0, 1]: 1 copies (the
    paper), < 1 is Polyak averaging."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    exploration_fraction: float = 0.5
    """Fraction of the run over which epsilon decays linearly."""
    loss: Literal["huber", "mse"] = "huber"
    """Huber (the paper's clipping of the error to [-1, 1]) or squared error."""
    max_grad_norm: float = 10.0
    """Rescale each gradient to at most this global norm (0: no clipping)."""
    double_q: bool = False
    """Double DQN (van Hasselt et al., 2016): the online network picks a', the target rates it."""
    dueling: bool = False
    """Dueling heads (Wang et al., 2016): Q = V + A - mean_a A."""
    network: Torso = "auto"
    """Network before the Q head: mlp, nature (Atari's three conv layers and 512 units), minatar
    (one conv layer, 128 units); auto picks from the observation's shape."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the MLP."""
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = "leaky_relu"
    """Activation of the MLP's hidden layers."""
    layer_norm: bool = True
    """LayerNorm after each hidden layer of the MLP (before the activation)."""
    final_init_std: float = 1e-3
    """Standard deviation of the output layer's initial weights (bias 0): Q starts near 0,
    which avoids early over-estimation (the lecture's advice)."""
    eval_epsilon: float = 0.0
    """Epsilon of the evaluation policy (0: greedy; Atari's protocol uses 0.05)."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type, out of range or inconsistent with
        another."""
        super().validate()
        cfg.positive(self, "learning_rate")
        cfg.within(self, 0, 1, "tau", open_low=True)
        nets.check_mlp(self)
        cfg.at_least(self, 1, "target_update_interval")
        cfg.positive(self, "adam_eps")
        cfg.within(
            self,
            0,
            1,
            "exploration_initial_eps",
            "exploration_final_eps",
            "exploration_fraction",
            "eval_epsilon",
        )
        cfg.at_least(self, 0, "max_grad_norm", "final_init_std")


Config = DQNConfig
DEFAULT_STEPS = 500_000

NOISE = None
"""No exploration-noise state: epsilon-greedy draws afresh at every step. (`epsilon` is the
exploration schedule the runner logs, `evaluation_action` the policy a run reports.)"""
evaluation_memory = None


def preset_for(spec: EnvSpec) -> str | None:
    """Atari's preset (`bellman/presets/dqn.toml`) for stacked pixel frames; none otherwise (the
    defaults suit CartPole)."""
    return "atari" if spec.frame_stack > 1 else None


NATURE_MIN_SIZE = 36
"""The smallest frame side the nature network's convolutions (8 stride 4, 4 stride 2, 3 stride 1)
leave a pixel of."""


def check_env(config: DQNConfig, spec: EnvSpec) -> None:
    """Raise EnvError if DQN cannot act in the env (it needs finitely many actions)."""
    if not isinstance(spec.action_space, Discrete):
        raise EnvError(
            f"dqn needs finitely many actions, but '{spec.id}' has the action space "
            f"{describe(spec.action_space)}; try ddpg, td3, sac or ppo, or discretise the actions"
        )
    torso, shape = torso_of(config, spec), spec.obs_shape
    if torso == "nature" and not (len(shape) == 3 and min(shape[1:]) >= NATURE_MIN_SIZE):
        raise EnvError(
            f"the nature network reads stacked frames [4, 84, 84] (at least {NATURE_MIN_SIZE} "
            f"pixels a side), but '{spec.id}' observes shape {shape}"
        )
    if torso == "minatar" and not (len(shape) == 3 and min(shape[:2]) >= 3):
        raise EnvError(
            f"the minatar network reads grids of channels [10, 10, C] (at least 3 cells a "
            f"side), but '{spec.id}' observes shape {shape}"
        )
    if torso == "mlp" and len(shape) == 3:
        raise EnvError(
            f"the mlp network reads flat observations, but '{spec.id}' observes images of shape "
            f"{shape}: use network auto, nature or minatar"
        )


def torso_of(config: DQNConfig, spec: EnvSpec) -> str:
    """The network `auto` stands for: nature for stacked pixel frames, minatar for small grids
    of channels (H, W, C), an MLP otherwise."""
    if config.network != "auto":
        return config.network
    if len(spec.obs_shape) == 3 and spec.obs_dtype == "uint8":
        return "nature"
    if len(spec.obs_shape) == 3:
        return "minatar"
    return "mlp"


class QNetwork(nn.Module):
    """Q(s, .; theta): one forward pass gives every action's value, `[B, num_actions]`."""

    num_actions: int
    torso: str
    hidden_sizes: Sequence[int]
    activation: str
    layer_norm: bool
    dueling: bool
    final_init_std: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        # convolutions as patches and dense layers (`nets.PatchConv`): the same functions, whose
        # gradients XLA computes about 10x faster on a CPU than those of `nn.Conv`
        if self.torso == "nature":  # [B, 4, 84, 84] uint8 frames (Mnih et al., 2015)
            x = jnp.transpose(x, (0, 2, 3, 1)).astype(jnp.float32) / 255.0
            x = nn.relu(PatchConv(32, 8, 4)(x))
            x = nn.relu(PatchConv(64, 4, 2)(x))
            x = nn.relu(PatchConv(64, 3, 1)(x))
            x = nn.relu(nn.Dense(512)(x.reshape((x.shape[0], -1))))
        elif self.torso == "minatar":  # [B, 10, 10, C] (Young & Tian, 2019)
            x = nn.relu(PatchConv(16, 3, 1)(x))
            x = nn.relu(nn.Dense(128)(x.reshape((x.shape[0], -1))))
        else:
            x = nets.mlp(x, self.hidden_sizes, self.activation, layer_norm=self.layer_norm)
        head = lambda n: nn.Dense(
            n,
            kernel_init=nn.initializers.normal(self.final_init_std),
            bias_init=nn.initializers.zeros,
        )
        if not self.dueling:
            return head(self.num_actions)(x)
        return dueling_q(head(1)(x), head(self.num_actions)(x))


def dueling_q(value: jax.Array, advantage: jax.Array) -> jax.Array:
    """Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a') (Wang et al., 2016, eq. 9): `[B, 1]` and
    `[B, A]` -> `[B, A]`."""
    return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


class DQNState(struct.PyTreeNode):
    params: Any
    """theta, the online network's parameters."""
    target_params: Any
    """theta^-, the target network's parameters."""
    opt_state: optax.OptState
    gradient_step: jax.Array
    """Gradient steps taken so far."""
    total_steps: int = struct.field(pytree_node=False)
    """Env steps in the whole run (per seed, summed over envs): the horizon of epsilon's decay."""


def _network(config: DQNConfig, spec: EnvSpec) -> QNetwork:
    assert isinstance(spec.action_space, Discrete)
    return QNetwork(
        num_actions=spec.action_space.n,
        torso=torso_of(config, spec),
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        layer_norm=config.layer_norm,
        dueling=config.dueling,
        final_init_std=config.final_init_std,
    )


def _optimizer(config: DQNConfig) -> optax.GradientTransformation:
    adam = optax.adam(config.learning_rate, eps=config.adam_eps)
    if config.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adam)
    return adam


def _inputs(spec: EnvSpec, obs: jax.Array) -> jax.Array:
    """What the network reads: pixels and channel grids as they are, else flat features."""
    return obs if len(spec.obs_shape) == 3 else obs_features(obs, spec)


def q_values(config: DQNConfig, spec: EnvSpec, params: Any, obs: jax.Array) -> jax.Array:
    """Q(s, .) `[B, num_actions]` for observations `[B, *obs_shape]`."""
    return cast(jax.Array, _network(config, spec).apply(params, _inputs(spec, obs)))


def init(key: jax.Array, config: DQNConfig, spec: EnvSpec, total_updates: int) -> DQNState:
    """theta at random, theta^- = theta, and Adam's moments, for a run of `total_updates`
    updates of the off-policy runner (`train_frequency` steps of `num_envs` envs each)."""
    dummy = jnp.zeros((1, *spec.obs_shape), spec.obs_dtype)
    params = _network(config, spec).init(key, _inputs(spec, dummy))
    return DQNState(
        params=params,
        target_params=params,
        opt_state=_optimizer(config).init(params),
        gradient_step=jnp.zeros((), jnp.int32),
        total_steps=total_updates * config.steps_per_update,
    )


def total_gradient_steps(config: DQNConfig, total_steps: int) -> int:
    """Gradient steps in a run of `total_steps` env steps: `gradient_steps` per learning phase,
    one phase per `train_frequency` steps of every env once `learning_starts` are stored."""
    phase = config.steps_per_update
    learning = max(total_steps - max(config.learning_starts, config.num_envs * config.n_step), 0)
    return max(1, -(-learning // phase) * config.gradient_steps)


def epsilon(config: DQNConfig, total_steps: int, env_step: jax.Array) -> jax.Array:
    """The exploration rate after `env_step` steps: linear from the initial to the final value
    over the first `exploration_fraction` of the run."""
    decay = jnp.maximum(1.0, config.exploration_fraction * total_steps)
    fraction = jnp.minimum(env_step / decay, 1.0)
    start, end = config.exploration_initial_eps, config.exploration_final_eps
    return jnp.asarray(start + fraction * (end - start), jnp.float32)


def _epsilon_greedy(q: jax.Array, eps: jax.Array, key: jax.Array) -> jax.Array:
    explore_key, action_key = jax.random.split(key)
    random = jax.random.randint(action_key, q.shape[:-1], 0, q.shape[-1])
    explore = jax.random.uniform(explore_key, q.shape[:-1]) < eps
    return jnp.where(explore, random, jnp.argmax(q, axis=-1)).astype(jnp.int32)


def act(
    config: DQNConfig,
    spec: EnvSpec,
    state: DQNState,
    obs: jax.Array,
    key: jax.Array,
    env_step: jax.Array,
) -> jax.Array:
    """The exploration policy pi_E: epsilon-greedy in Q, for a batch of observations `[B, ...]`."""
    q = q_values(config, spec, state.params, obs)
    return _epsilon_greedy(q, epsilon(config, state.total_steps, env_step), key)


def greedy(config: DQNConfig, spec: EnvSpec, state: DQNState, obs: jax.Array) -> jax.Array:
    """The learned policy pi: argmax_a Q(s, a)."""
    return jnp.argmax(q_values(config, spec, state.params, obs), axis=-1).astype(jnp.int32)


def evaluation_action(
    config: DQNConfig, spec: EnvSpec, state: DQNState, obs: jax.Array, key: jax.Array
) -> jax.Array:
    """The policy a run reports its return for: greedy, or epsilon-greedy at `eval_epsilon`."""
    if config.eval_epsilon == 0.0:
        return greedy(config, spec, state, obs)
    q = q_values(config, spec, state.params, obs)
    return _epsilon_greedy(q, jnp.asarray(config.eval_epsilon), key)


def td_target(config: DQNConfig, spec: EnvSpec, state: DQNState, batch: Batch) -> jax.Array:
    """y = R + discount * Q^(s', a'), with a' = argmax Q^(s', .) or, for Double DQN,
    argmax Q(s', .; theta). `batch.reward` and `batch.discount` already hold the n-step sum and
    gamma^n (1 - terminated)."""
    q_next_target = q_values(config, spec, state.target_params, batch.next_obs)
    if config.double_q:
        q_next_online = q_values(config, spec, state.params, batch.next_obs)
        return targets.double_q_target(batch.reward, batch.discount, q_next_target, q_next_online)
    return targets.q_learning_target(batch.reward, batch.discount, q_next_target)


def loss(
    params: Any, config: DQNConfig, spec: EnvSpec, batch: Batch, target: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """mean_i w_i L(y_i - Q(s_i, a_i; theta)), L Huber or squared; w the replay's importance
    weights (1 without prioritisation)."""
    q = q_values(config, spec, params, batch.obs)
    q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
    error = target - q_taken
    per_sample = huber(error) if config.loss == "huber" else 0.5 * error**2
    return jnp.mean(batch.weight * per_sample), {"td_error": error, "q": q_taken}


def learn(
    config: DQNConfig, spec: EnvSpec, state: DQNState, batch: Batch, key: jax.Array
) -> tuple[DQNState, dict[str, jax.Array], jax.Array]:
    """One gradient step on a minibatch; every `target_update_interval` steps, theta^- moves to
    theta. Returns the new state, metrics and the TD errors (for prioritised replay)."""
    target = jax.lax.stop_gradient(td_target(config, spec, state, batch))
    grads, aux = jax.grad(loss, has_aux=True)(state.params, config, spec, batch, target)
    updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
    if config.anneal_lr:
        fraction_left = 1.0 - state.gradient_step / total_gradient_steps(config, state.total_steps)
        updates = jax.tree.map(lambda u: u * jnp.maximum(fraction_left, 0.0), updates)
    params = optax.apply_updates(state.params, updates)
    step = state.gradient_step + 1
    due = step % config.target_update_interval == 0
    target_params = jax.tree.map(
        lambda new, old: jnp.where(due, new, old),
        targets.polyak_update(params, state.target_params, config.tau),
        state.target_params,
    )
    error = aux["td_error"]
    metrics = {
        "loss": jnp.mean(huber(error) if config.loss == "huber" else 0.5 * error**2),
        "q": jnp.mean(aux["q"]),
        "td_abs": jnp.mean(jnp.abs(error)),
        "grad_norm": optax.tree.norm(grads),
    }
    new_state = state.replace(
        params=params, target_params=target_params, opt_state=opt_state, gradient_step=step
    )
    return new_state, metrics, error
