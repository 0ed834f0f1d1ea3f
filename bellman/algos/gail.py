"""Generative adversarial imitation learning (Ho & Ermon, 2016): a discriminator tells the
expert's state-action pairs from the learner's, and the learner, PPO here, maximises a reward
the discriminator gives; the env's reward is never used (only reported).

The algorithm, as the adversarial runner (`runners.adversarial`) drives it:

    policy pi_theta (PPO's networks), discriminator D_w(s, a) = sigmoid(f_w(s, a))  -> `init`
    for each update:
        a rollout of pi_theta in the env                                     -> runner (PPO's)
        expert pairs (s_E, a_E): as many, drawn from the demonstrations      -> `learn`
        w: `disc_steps` Adam steps on the logistic loss
           -mean log D(s_E, a_E) - mean log(1 - D(s, a))                     -> `discriminator_loss`
        r(s, a) = -log(1 - D(s, a)) = softplus(f_w(s, a)) for the rollout    -> `imitation_reward`
        theta: PPO's update on the rollout with r in place of the env's reward  -> `ppo.learn`

The paper's policy step is TRPO's; PPO is the common substitute (the `imitation` library and
Stable-Baselines3's users do the same). r = -log(1 - D) is positive, a reward for surviving,
which suits episodes that end on failure (CartPole); `reward = logit` gives log D - log(1 - D)
(AIRL's form), with no sign bias. The discriminator's inputs are the observation features
standardised by the demonstrations' statistics and the action (one-hot for discrete actions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman import nets
from bellman.algos import ppo
from bellman.algos.ppo import PPOConfig
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.nets import obs_features
from bellman.ops.normalization import standardize
from bellman.rollout import Rollout


@dataclass(frozen=True)
class GAILConfig(PPOConfig):
    """GAIL's settings: PPO's (its defaults, the learner's) and the discriminator's."""

    disc_hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the discriminator."""
    disc_learning_rate: float = 3e-4
    """Adam step size of the discriminator."""
    disc_steps: int = 4
    """Discriminator steps per update, each on the whole rollout against as many expert pairs."""
    reward: Literal["gail", "logit"] = "gail"
    """The learner's reward: gail, -log(1 - D(s, a)); logit, log D - log(1 - D)."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        super().validate()
        cfg.require(
            len(self.disc_hidden_sizes) > 0 and all(h >= 1 for h in self.disc_hidden_sizes),
            "disc_hidden_sizes must be one or more positive widths",
        )
        cfg.positive(self, "disc_learning_rate")
        cfg.at_least(self, 1, "disc_steps")


Config = GAILConfig
DEFAULT_STEPS = 500_000

EPISODIC = False
"""Rollouts run on across episodes (PPO's)."""
evaluation_action = None
"""The return a run reports is PPO's greedy policy's, in the env's own reward."""
evaluation_memory = None


def check_env(config: GAILConfig, spec: EnvSpec) -> None:
    """PPO's action spaces."""
    ppo.check_env(config, spec)


class Discriminator(nn.Module):
    """f_w(s, a), the logit of D: `[B]`."""

    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(1)(nets.mlp(x, self.hidden_sizes, "tanh"))[..., 0]


class GAILState(struct.PyTreeNode):
    ppo: ppo.PPOState
    disc: Any
    disc_opt: optax.OptState
    obs_mean: jax.Array
    """`[F]` the demonstrations' feature means (the discriminator's standardisation)."""
    obs_std: jax.Array


def _inputs(
    spec: EnvSpec, mean: jax.Array, std: jax.Array, obs: jax.Array, action: jax.Array
) -> jax.Array:
    """The discriminator's input: features standardised by `mean` and `std`, and the action
    (one-hot if discrete)."""
    x = standardize(obs_features(obs, spec), mean, std)
    space = spec.action_space
    if isinstance(space, Discrete):
        a = jax.nn.one_hot(action, space.n, dtype=jnp.float32)
    else:
        a = action.reshape((*action.shape[: obs.ndim - len(spec.obs_shape)], -1))
    return jnp.concatenate([x, a.astype(jnp.float32)], axis=-1)


def init(key: jax.Array, config: GAILConfig, spec: EnvSpec, total_updates: int) -> GAILState:
    """PPO's fresh state and a random discriminator; standardisation by the identity until
    `prepare`."""
    ppo_key, disc_key = jax.random.split(key)
    size = obs_features(jnp.zeros((1, *spec.obs_shape), spec.obs_dtype), spec).shape[-1]
    zeros, ones = jnp.zeros((size,), jnp.float32), jnp.ones((size,), jnp.float32)
    action = jnp.zeros((1, *spec.action_space.shape), jnp.int32 if _discrete(spec) else jnp.float32)
    obs = jnp.zeros((1, *spec.obs_shape), spec.obs_dtype)
    disc = Discriminator(config.disc_hidden_sizes).init(
        disc_key, _inputs(spec, zeros, ones, obs, action)
    )
    return GAILState(
        ppo=ppo.init(ppo_key, config, spec, total_updates),
        disc=disc,
        disc_opt=optax.adam(config.disc_learning_rate).init(disc),
        obs_mean=zeros,
        obs_std=ones - 1e-3,  # + the standardisation's 1e-3: the identity
    )


def _discrete(spec: EnvSpec) -> bool:
    return isinstance(spec.action_space, Discrete)


def prepare(config: GAILConfig, spec: EnvSpec, state: GAILState, stats: Any) -> GAILState:
    """The demonstrations' feature statistics for the discriminator's inputs."""
    return state.replace(obs_mean=stats.obs_mean, obs_std=stats.obs_std)


def act(
    config: GAILConfig, spec: EnvSpec, state: GAILState, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, Any]:
    """PPO's behaviour policy."""
    return ppo.act(config, spec, state.ppo, obs, key)


def greedy(config: GAILConfig, spec: EnvSpec, state: GAILState, obs: jax.Array) -> jax.Array:
    """PPO's greedy policy."""
    return ppo.greedy(config, spec, state.ppo, obs)


def logits(disc: Any, config: GAILConfig, x: jax.Array) -> jax.Array:
    return cast(jax.Array, Discriminator(config.disc_hidden_sizes).apply(disc, x))


def discriminator_loss(
    disc: Any, config: GAILConfig, expert: jax.Array, learner: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-mean log D(expert) - mean log(1 - D(learner)) with D = sigmoid(f): softplus(-f) on the
    expert's inputs, softplus(f) on the learner's; and the share of each told apart."""
    f_expert, f_learner = logits(disc, config, expert), logits(disc, config, learner)
    loss = jnp.mean(jax.nn.softplus(-f_expert)) + jnp.mean(jax.nn.softplus(f_learner))
    told = {
        "disc_expert_accuracy": jnp.mean(f_expert > 0),
        "disc_learner_accuracy": jnp.mean(f_learner < 0),
    }
    return loss, told


def imitation_reward(config: GAILConfig, f: jax.Array) -> jax.Array:
    """-log(1 - D) = softplus(f) (gail), or log D - log(1 - D) = f (logit)."""
    return jax.nn.softplus(f) if config.reward == "gail" else f


def learn(
    config: GAILConfig,
    spec: EnvSpec,
    state: GAILState,
    rollout: Rollout,
    key: jax.Array,
    demos: Any,
) -> tuple[GAILState, dict[str, jax.Array]]:
    """The discriminator's steps on the rollout against expert pairs, then PPO's update on the
    rollout rewarded by the discriminator."""
    sample_key, ppo_key = jax.random.split(key)
    stats = (state.obs_mean, state.obs_std)
    inputs = _inputs(spec, *stats, rollout.obs, rollout.action)  # [T, B, F + A]
    learner = inputs.reshape((-1, inputs.shape[-1]))
    count = demos.obs.shape[0]
    index = jax.random.randint(sample_key, (learner.shape[0],), 0, count)
    expert = _inputs(spec, *stats, demos.obs[index], demos.action[index])
    opt = optax.adam(config.disc_learning_rate)

    def disc_step(carry: tuple[Any, Any], _: Any) -> tuple[tuple[Any, Any], Any]:
        disc, opt_state = carry
        (loss, told), grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
            disc, config, expert, learner
        )
        updates, opt_state = opt.update(grads, opt_state, disc)
        return (optax.apply_updates(disc, updates), opt_state), {"disc_loss": loss, **told}

    (disc, disc_opt), disc_metrics = jax.lax.scan(
        disc_step, (state.disc, state.disc_opt), None, length=config.disc_steps
    )
    f = logits(disc, config, inputs)
    reward = jax.lax.stop_gradient(imitation_reward(config, f))
    ppo_state, metrics = ppo.learn(config, spec, state.ppo, rollout.replace(reward=reward), ppo_key)
    metrics = {
        **metrics,
        **jax.tree.map(lambda m: m[-1], disc_metrics),
        "imitation_reward": jnp.mean(reward),
        "env_reward": jnp.mean(rollout.reward),
    }
    return state.replace(ppo=ppo_state, disc=disc, disc_opt=disc_opt), metrics
