"""The parts the algorithms share: the MLP builder (`nets.mlp`), which every MLP uses and which
keeps each network's parameters as they were (names, and values for a key), and the critics' TD
loss (`ops.losses.ensemble_td_loss`) on hand-computed numbers, plain, jitted and vmapped."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman import nets
from bellman.algos import ddpg, dqn, sac
from bellman.envs import registry
from bellman.ops.losses import ensemble_td_loss


def names(tree: object) -> list[str]:
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return sorted("/".join(str(getattr(k, "key", k)) for k in path) for path, _ in paths)


class HandWritten(nn.Module):
    """An MLP written out as the networks wrote it before `nets.mlp`."""

    hidden_sizes: Sequence[int]
    layer_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for size in self.hidden_sizes:
            x = nn.Dense(size)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.leaky_relu(x)
        return nn.Dense(2)(x)


class Built(nn.Module):
    hidden_sizes: Sequence[int]
    layer_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nets.mlp(x, self.hidden_sizes, "leaky_relu", layer_norm=self.layer_norm)
        return nn.Dense(2)(x)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_mlp_builds_the_layers_a_network_would_write(layer_norm: bool) -> None:
    x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    key = jax.random.PRNGKey(7)
    before = HandWritten((8, 5), layer_norm).init(key, x)
    after = Built((8, 5), layer_norm).init(key, x)
    assert names(after) == names(before)
    jax.tree.map(np.testing.assert_array_equal, after, before)
    np.testing.assert_array_equal(
        Built((8, 5), layer_norm).apply(after, x), HandWritten((8, 5), layer_norm).apply(before, x)
    )


def test_every_network_keeps_its_parameter_names() -> None:
    cartpole = registry.resolve("CartPole-v1").spec
    pendulum = registry.resolve("Pendulum-v1").spec
    key = jax.random.PRNGKey(0)

    def dense(n: int, prefix: str = "params") -> list[str]:
        return [f"{prefix}/Dense_{i}/{p}" for i in range(n) for p in ("bias", "kernel")]

    norms = [f"params/LayerNorm_{i}/{p}" for i in range(2) for p in ("bias", "scale")]
    assert names(dqn.init(key, dqn.DQNConfig(), cartpole, 1).params) == sorted(dense(3) + norms)
    actor_critic = ddpg.init(key, ddpg.DDPGConfig(), pendulum, 1)
    assert names(actor_critic.actor) == dense(3)
    assert names(actor_critic.critic) == dense(3, "params/Vmap_QMLP_0")
    assert names(sac.init(key, sac.SACConfig(), pendulum, 1).actor) == dense(4)


def test_ensemble_td_loss_on_hand_numbers() -> None:
    q = jnp.array([[1.0, 2.0], [3.0, 0.0]])  # [critics, B]
    target = jnp.array([2.0, 1.0])
    weight = jnp.array([1.0, 0.5])
    # errors y - Q: [[1, -1], [-1, 1]]; each critic: mean(w * e^2 / 2) = (0.5 + 0.25) / 2
    for fn in (ensemble_td_loss, jax.jit(ensemble_td_loss)):
        loss, error = fn(q, target, weight)
        np.testing.assert_allclose(loss, 0.75)
        np.testing.assert_allclose(error, [[1.0, -1.0], [-1.0, 1.0]])
    twice = lambda x: jnp.stack([x, x])
    losses, _ = jax.vmap(ensemble_td_loss)(jnp.stack([q, 2 * q]), twice(target), twice(weight))
    # the second: errors [[0, -3], [-4, 1]] -> (0 + 2.25) / 2 + (8 + 0.25) / 2
    np.testing.assert_allclose(losses, [0.75, 1.125 + 4.125])
    # one critic (DDPG): its mean weighted squared error / 2
    loss, _ = ensemble_td_loss(q[:1], target, weight)
    np.testing.assert_allclose(loss, 0.375)


def test_ddpg_and_sac_use_the_same_critic_loss() -> None:
    pendulum = registry.resolve("Pendulum-v1").spec
    config = ddpg.DDPGConfig(twin_critics=True, hidden_sizes=(8,))
    critic = ddpg.init(jax.random.PRNGKey(1), config, pendulum, 1).critic
    obs = jnp.ones((4, 3))
    action = jnp.linspace(-2.0, 2.0, 4).reshape(4, 1)
    batch = type("B", (), {"obs": obs, "action": action, "weight": jnp.ones(4)})()
    target = jnp.arange(4.0)
    loss, first = ddpg.critic_loss(critic, config, pendulum, batch, target)  # type: ignore[arg-type]
    q = ddpg.q_values(config, pendulum, critic, obs, action)
    np.testing.assert_allclose(loss, np.sum(np.mean(0.5 * (target - q) ** 2, axis=-1)), rtol=1e-6)
    np.testing.assert_allclose(first, target - q[0], rtol=1e-6)
    sac_config = sac.SACConfig(hidden_sizes=(8,))
    sac_loss, _ = sac.critic_loss(critic, sac_config, pendulum, batch, target)  # type: ignore[arg-type]
    np.testing.assert_allclose(sac_loss, loss, rtol=1e-6)
