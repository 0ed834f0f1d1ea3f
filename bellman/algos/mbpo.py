"""MBPO (Janner et al., 2019): model-based policy optimisation. SAC learns mostly from short
rollouts branched from real states through a learned ensemble, a few real transitions mixed in.

The algorithm, as the off-policy runners drive it (the replay memory is the real data D_env):

    SAC's actor, critics and temperature; the ensemble; an empty model memory D_model  -> `init`
    for each env step:
        a ~ pi(.|s) (uniform before `learning_starts`); store the step in D_env   -> `act`, runner
        gradient_steps times, on a minibatch sampled from D_env:
            the ensemble: a step on the Gaussian NLL of its training transitions  -> `learn`
            from the minibatch's states, `rollout_length` steps of pi through the
              model, each row through a member drawn at random; store them in D_model -> `rollout`
            SAC: one step on a minibatch of which `real_ratio` comes from D_env and
              the rest from D_model                                              -> `mixed_batch`

The model is the one PETS learns (`bellman.ops.dynamics`: an ensemble of Gaussian networks over
the observation's change and the reward); SAC's step is `bellman.algos.sac.learn` unchanged.
Model transitions never end an episode (the model predicts no termination), which holds on
Pendulum and HalfCheetah; MBPO's paper used each env's known termination rule instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman.algos import pets, sac
from bellman.buffers import Batch
from bellman.envs.spaces import EnvSpec
from bellman.ops import dynamics


@dataclass(frozen=True)
class MBPOConfig(sac.SACConfig):
    """MBPO's settings: SAC's (with Pendulum's learning rate), and the model's. The paper's
    model rollouts of one step and 5% real data; 5 policy updates per env step instead of its
    20, and a smaller ensemble (5 networks of 3 x 64), trained a step at every policy update
    instead of to convergence every 250 steps: sized for a CPU."""

    # SAC's and the replay loop's settings, with MBPO's defaults where they differ
    learning_starts: int = 500
    learning_rate: float = 1e-3
    gradient_steps: int = 5

    ensemble_size: int = 5
    """M, the networks of the model's ensemble."""
    model_hidden_sizes: tuple[int, ...] = (64, 64, 64)
    """Hidden layer widths of each of the model's networks."""
    model_activation: Literal["silu", "relu", "tanh", "elu"] = "silu"
    """Activation of the model's hidden layers."""
    model_learning_rate: float = 1e-3
    """AdamW step size of the model."""
    model_weight_decay: float = 5e-5
    """Decoupled weight decay of the model's kernels."""
    holdout: float = 0.1
    """The share of real transitions kept out of the model's training, to measure it on."""
    rollout_length: int = 1
    """k, the model steps of each branched rollout."""
    model_buffer_size: int = 100_000
    """Model transitions D_model keeps (the newest)."""
    real_ratio: float = 0.05
    """The share of each SAC minibatch drawn from real data."""

    STATIC_FLOATS = (*sac.SACConfig.STATIC_FLOATS, "holdout", "real_ratio")

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type, out of range or inconsistent."""
        super().validate()
        cfg.at_least(self, 1, "ensemble_size", "rollout_length", "model_buffer_size")
        cfg.positive(self, "model_learning_rate")
        cfg.at_least(self, 0, "model_weight_decay")
        cfg.within(self, 0, 0.5, "holdout")
        cfg.within(self, 0, 1, "real_ratio")
        cfg.require(
            all(isinstance(w, int) and w >= 1 for w in self.model_hidden_sizes),
            f"model_hidden_sizes must be positive integers, got {self.model_hidden_sizes}",
        )
        cfg.require(
            self.model_buffer_size >= self.batch_size * self.rollout_length,
            f"model_buffer_size ({self.model_buffer_size:,}) must hold at least one learning "
            f"step's rollouts, batch_size * rollout_length = "
            f"{self.batch_size * self.rollout_length:,}",
        )


Config = MBPOConfig
DEFAULT_STEPS = 5_000

NOISE = None
"""No exploration-noise state: SAC draws a ~ pi(.|s) afresh."""
epsilon = None
"""No exploration schedule to log."""
evaluation_action = None
"""The return a run reports is SAC's deterministic policy's (`greedy`)."""
evaluation_memory = None


class ModelMemory(struct.PyTreeNode):
    """D_model: a ring of model transitions."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    position: jax.Array
    """The slot the next transition goes to."""
    size: jax.Array
    """Transitions stored (at most the ring's length)."""


class MBPOState(struct.PyTreeNode):
    sac: sac.SACState
    """SAC's actor, critics, temperature and optimisers."""
    model: dynamics.ModelState
    """The ensemble, its normalisers and optimiser."""
    memory: ModelMemory
    gradient_step: jax.Array


def check_env(config: MBPOConfig, spec: EnvSpec) -> None:
    """SAC's actions (a bounded box) and the model's vector observations."""
    pets.check_env(config, spec)  # type: ignore[arg-type]


def _net(config: MBPOConfig, spec: EnvSpec) -> dynamics.GaussianEnsemble:
    return dynamics.GaussianEnsemble(
        config.ensemble_size,
        spec.obs_shape[0] + 1,
        config.model_hidden_sizes,
        config.model_activation,
    )


def _model_optimizer(config: MBPOConfig) -> optax.GradientTransformation:
    return optax.adamw(config.model_learning_rate, weight_decay=config.model_weight_decay)


def init(key: jax.Array, config: MBPOConfig, spec: EnvSpec, total_updates: int) -> MBPOState:
    """SAC's networks, a random ensemble and an empty model memory."""
    sac_key, model_key = jax.random.split(key)
    obs_dim, action_dim = spec.obs_shape[0], spec.action_space.shape[0]
    n = config.model_buffer_size
    memory = ModelMemory(
        obs=jnp.zeros((n, obs_dim), jnp.float32),
        action=jnp.zeros((n, action_dim), jnp.float32),
        reward=jnp.zeros((n,), jnp.float32),
        next_obs=jnp.zeros((n, obs_dim), jnp.float32),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )
    model = dynamics.init_model(
        model_key, _net(config, spec), _model_optimizer(config), obs_dim, action_dim
    )
    return MBPOState(
        sac.init(sac_key, config, spec, total_updates), model, memory, jnp.zeros((), jnp.int32)
    )


def act(
    config: MBPOConfig,
    spec: EnvSpec,
    state: MBPOState,
    obs: jax.Array,
    key: jax.Array,
    env_step: jax.Array,
) -> jax.Array:
    """SAC's exploration policy: a ~ pi(.|s), uniform before `learning_starts`."""
    return sac.act(config, spec, state.sac, obs, key, env_step)


def greedy(config: MBPOConfig, spec: EnvSpec, state: MBPOState, obs: jax.Array) -> jax.Array:
    """SAC's deterministic policy, the squashed mean."""
    return sac.greedy(config, spec, state.sac, obs)


def store(memory: ModelMemory, obs: jax.Array, action: jax.Array, reward: jax.Array,
          next_obs: jax.Array) -> ModelMemory:  # fmt: skip
    """D_model with the transitions `[N, ...]` written at its next N slots (the oldest
    overwritten)."""
    capacity = memory.obs.shape[0]
    slots = (memory.position + jnp.arange(obs.shape[0])) % capacity
    return ModelMemory(
        obs=memory.obs.at[slots].set(obs),
        action=memory.action.at[slots].set(action),
        reward=memory.reward.at[slots].set(reward),
        next_obs=memory.next_obs.at[slots].set(next_obs),
        position=(memory.position + obs.shape[0]) % capacity,
        size=jnp.minimum(memory.size + obs.shape[0], capacity),
    )


def rollout(
    config: MBPOConfig, spec: EnvSpec, state: MBPOState, start: jax.Array, key: jax.Array
) -> ModelMemory:
    """`rollout_length` steps of pi through the model from the states `start` `[B, obs]`, each
    row's every step through a member drawn at random; the transitions go to D_model."""
    net = _net(config, spec)

    def step(carry: tuple[jax.Array, ModelMemory], key: jax.Array) -> tuple[tuple, None]:
        obs, memory = carry
        policy_key, model_key = jax.random.split(key)
        action = sac.policy(config, spec, state.sac.actor, obs).sample(policy_key)
        model = state.model
        y = pets.box_action(spec, action)
        next_obs, reward = dynamics.sample_member_step(
            net, model.params, model.norm, obs, y, model_key
        )
        return (next_obs, store(memory, obs, action, reward, next_obs)), None

    keys = jax.random.split(key, config.rollout_length)
    (_, memory), _ = jax.lax.scan(step, (start.astype(jnp.float32), state.memory), keys)
    return memory


def mixed_batch(config: MBPOConfig, memory: ModelMemory, real: Batch, key: jax.Array) -> Batch:
    """SAC's minibatch: the first round(real_ratio * B) rows of the real minibatch, the rest
    drawn uniformly from D_model (discounted by gamma: model transitions never end)."""
    size = real.obs.shape[0]
    n_real = round(config.real_ratio * size)
    picks = jax.random.randint(key, (size - n_real,), 0, jnp.maximum(memory.size, 1))
    join = lambda a, b: jnp.concatenate([a[:n_real], b.astype(a.dtype)], axis=0)
    ones = jnp.ones((size - n_real,), jnp.float32)
    return Batch(
        obs=join(real.obs, memory.obs[picks]),
        action=join(real.action, memory.action[picks]),
        reward=join(real.reward, memory.reward[picks]),
        discount=join(real.discount, config.gamma * ones),
        next_obs=join(real.next_obs, memory.next_obs[picks]),
        weight=join(real.weight, ones),
        index=real.index,
    )


def learn(
    config: MBPOConfig, spec: EnvSpec, state: MBPOState, batch: Batch, key: jax.Array
) -> tuple[MBPOState, dict[str, jax.Array], jax.Array]:
    """A step of the model on the real minibatch, rollouts from its states into D_model, and a
    SAC step on a minibatch mixed from both memories."""
    model_key, rollout_key, mix_key, sac_key = jax.random.split(key, 4)
    action = pets.box_action(spec, batch.action)
    inputs = dynamics.inputs_of(batch.obs, action)
    targets = dynamics.targets_of(batch.obs, action, batch.next_obs, batch.reward)
    train = 1.0 - dynamics.held_out(batch.index, config.holdout).astype(jnp.float32)
    model, model_metrics = dynamics.learn_model(
        _net(config, spec), _model_optimizer(config), state.model, inputs, targets, train, model_key
    )
    state = state.replace(model=model)
    memory = rollout(config, spec, state, batch.obs, rollout_key)
    sac_batch = mixed_batch(config, memory, batch, mix_key)
    sac_state, sac_metrics, _ = sac.learn(config, spec, state.sac, sac_batch, sac_key)
    metrics = {
        **sac_metrics,
        **model_metrics,
        "model_reward": memory.reward.sum() / jnp.maximum(memory.size, 1),
    }
    new_state = MBPOState(sac_state, model, memory, state.gradient_step + 1)
    return new_state, metrics, jnp.zeros((batch.obs.shape[0],), jnp.float32)
