"""Learned dynamics: an ensemble of probabilistic networks (Chua et al., 2018, "PETS"), each a
Gaussian over the next observation's change and the reward given an observation and an action.

    x = normalise([s, a]), y = normalise([s' - s, r])  (running statistics of the data)
    member m: (mu_m(x), log sigma^2_m(x)),
              log sigma^2 bounded softly to [min_m, max_m]             -> `GaussianEnsemble`
    loss = sum_m mean_batch sum_dims (y - mu_m)^2 / sigma_m^2 + log sigma_m^2
           + 0.01 (sum max - sum min)                                  -> `ensemble_loss`
    s' ~ s + N(mu_m, sigma_m^2) (unnormalised), r the mean reward      -> `sample_next`

Each member learns from its own bootstrap resample of every minibatch, so that the members'
disagreement measures what the data leaves unknown (epistemic uncertainty) and each sigma what
the env leaves random (aleatoric). The bounds on log sigma^2 are learned too, from 0.5 and -10
(PETS's values), so that the variance cannot grow or shrink without limit outside the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman.ops.normalization import RunningMeanStd
from bellman.ops.normalization import update as update_stats

LOGVAR_BOUNDS = (-10.0, 0.5)
"""The initial soft bounds (min, max) of each output's log-variance, in normalised units."""
BOUND_PENALTY = 0.01
"""The weight of the term that pulls the learned bounds together (PETS's 0.01)."""

_ACTIVATIONS = {"relu": nn.relu, "silu": nn.silu, "tanh": nn.tanh, "elu": nn.elu}


class EnsembleDense(nn.Module):
    """M dense layers applied to M inputs at once: `[M, B, D] -> [M, B, F]`."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        members, _, inputs = x.shape
        init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=1)
        kernel = self.param("kernel", init, (members, inputs, self.features))
        bias = self.param("bias", nn.initializers.zeros, (members, 1, self.features))
        return jnp.einsum("mbd,mdf->mbf", x, kernel) + bias


class GaussianEnsemble(nn.Module):
    """`members` MLPs: `[M, B, D]` normalised inputs -> means and log-variances `[M, B, O]`."""

    members: int
    outputs: int
    hidden_sizes: Sequence[int]
    activation: str = "silu"

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(EnsembleDense(width)(x))
        out = EnsembleDense(2 * self.outputs)(x)
        mean, raw = out[..., : self.outputs], out[..., self.outputs :]
        low, high = LOGVAR_BOUNDS
        max_logvar = self.param("max_logvar", nn.initializers.constant(high), (self.outputs,))
        min_logvar = self.param("min_logvar", nn.initializers.constant(low), (self.outputs,))
        logvar = max_logvar - nn.softplus(max_logvar - raw)
        logvar = min_logvar + nn.softplus(logvar - min_logvar)
        return mean, logvar


def _apply(net: GaussianEnsemble, params: dict, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    mean, logvar = cast(tuple[jax.Array, jax.Array], net.apply(params, x))
    return mean, logvar


def gaussian_nll(mean: jax.Array, logvar: jax.Array, y: jax.Array) -> jax.Array:
    """-log N(y; mean, exp(logvar)), elementwise."""
    return 0.5 * ((y - mean) ** 2 * jnp.exp(-logvar) + logvar + math.log(2.0 * math.pi))


class Normalizers(struct.PyTreeNode):
    """Running statistics of the model's inputs [s, a] and targets [s' - s, r]."""

    inputs: RunningMeanStd
    targets: RunningMeanStd

    @classmethod
    def create(cls, inputs: int, targets: int) -> Normalizers:
        return cls(RunningMeanStd.create((inputs,)), RunningMeanStd.create((targets,)))


def _scale(stats: RunningMeanStd) -> jax.Array:
    return jnp.sqrt(stats.var + 1e-8)


def inputs_of(obs: jax.Array, action: jax.Array) -> jax.Array:
    """[s, a], flattened: `[..., obs_dim + action_dim]`."""
    return jnp.concatenate([obs, action], axis=-1).astype(jnp.float32)


def targets_of(
    obs: jax.Array, action: jax.Array, next_obs: jax.Array, reward: jax.Array
) -> jax.Array:
    """[s' - s, r]: `[..., obs_dim + 1]`."""
    return jnp.concatenate([next_obs - obs, reward[..., None]], axis=-1).astype(jnp.float32)


def observe(norm: Normalizers, inputs: jax.Array, targets: jax.Array) -> Normalizers:
    """The statistics with a batch of inputs and targets merged in."""
    return Normalizers(update_stats(norm.inputs, inputs), update_stats(norm.targets, targets))


def ensemble_loss(
    net: GaussianEnsemble,
    params: dict,
    norm: Normalizers,
    inputs: jax.Array,
    targets: jax.Array,
    weights: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The members' Gaussian negative log-likelihoods of the targets (normalised), each member's
    examples weighted by `weights` `[M, B]` (its bootstrap counts; 0 for held-out ones), plus
    the bound penalty. Returns the loss and its parts (per target dimension)."""
    x = (inputs - norm.inputs.mean) / _scale(norm.inputs)
    y = (targets - norm.targets.mean) / _scale(norm.targets)
    members = weights.shape[0]
    mean, logvar = _apply(net, params, jnp.broadcast_to(x, (members, *x.shape)))
    nll = gaussian_nll(mean, logvar, y).mean(axis=-1)  # [M, B]
    mse = ((mean - y) ** 2).mean(axis=-1)
    total = jnp.maximum(weights.sum(axis=1), 1.0)
    nll_m = (nll * weights).sum(axis=1) / total  # [M]
    bounds = params["params"]
    penalty = BOUND_PENALTY * (bounds["max_logvar"].sum() - bounds["min_logvar"].sum())
    loss = nll_m.sum() + penalty
    parts = {"nll": nll_m.mean(), "mse": ((mse * weights).sum(axis=1) / total).mean()}
    return loss, parts


def predict(
    net: GaussianEnsemble, params: dict, norm: Normalizers, obs: jax.Array, action: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Every member's Gaussian over [s' - s, r] in the env's units: means and variances
    `[M, B, obs_dim + 1]` for observations `[B, obs_dim]` and actions `[B, action_dim]`, or
    `[M, B, ...]` inputs, each member its own."""
    x = (inputs_of(obs, action) - norm.inputs.mean) / _scale(norm.inputs)
    if x.ndim == 2:
        x = jnp.broadcast_to(x, (net.members, *x.shape))
    mean, logvar = _apply(net, params, x)
    scale = _scale(norm.targets)
    return norm.targets.mean + scale * mean, jnp.exp(logvar) * scale**2


def _draw(
    obs: jax.Array, mean: jax.Array, var: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """s' ~ s + N(mean, var) over the observation's part of [s' - s, r], and the mean reward."""
    delta = mean[..., :-1] + jnp.sqrt(var[..., :-1]) * jax.random.normal(key, obs.shape)
    return obs + delta, mean[..., -1]


def sample_next(
    net: GaussianEnsemble,
    params: dict,
    norm: Normalizers,
    obs: jax.Array,
    action: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """One step of each member's own particles: observations and actions `[M, B, ...]` ->
    sampled next observations `[M, B, obs_dim]` and the predicted mean rewards `[M, B]`."""
    mean, var = predict(net, params, norm, obs, action)
    return _draw(obs, mean, var, key)


def disagreement(mean: jax.Array) -> jax.Array:
    """The members' disagreement on each prediction: the variance of their means over the
    members, averaged over the dimensions; `[M, B, O] -> [B]`."""
    return mean.var(axis=0).mean(axis=-1)


class ModelState(struct.PyTreeNode):
    """A learned model: the ensemble's parameters, its normalisers and its optimiser's state."""

    params: Any
    norm: Normalizers
    opt_state: optax.OptState


def init_model(
    key: jax.Array,
    net: GaussianEnsemble,
    optimizer: optax.GradientTransformation,
    obs_dim: int,
    action_dim: int,
) -> ModelState:
    """A random ensemble, normalisers that have seen nothing."""
    params = net.init(key, jnp.zeros((net.members, 1, obs_dim + action_dim), jnp.float32))
    norm = Normalizers.create(obs_dim + action_dim, obs_dim + 1)
    return ModelState(params, norm, optimizer.init(params))


def held_out(index: jax.Array, share: float) -> jax.Array:
    """`[B]` whether each transition (its replay slot `[B, 2]`: env, slot) is held out from
    training: a hash of the slot below `share`, the same every time the slot is sampled."""
    h = index[:, 0].astype(jnp.uint32) * jnp.uint32(2654435761) + index[:, 1].astype(jnp.uint32)
    h = (h ^ (h >> 15)) * jnp.uint32(2246822519)
    h = h ^ (h >> 13)
    return (h % 10_000).astype(jnp.float32) < share * 10_000


def learn_model(
    net: GaussianEnsemble,
    optimizer: optax.GradientTransformation,
    model: ModelState,
    inputs: jax.Array,
    targets: jax.Array,
    train: jax.Array,
    key: jax.Array,
) -> tuple[ModelState, dict[str, jax.Array]]:
    """One optimiser step of every member on the Gaussian NLL of its bootstrap resample of the
    minibatch's training examples (`train` `[B]`, 1 or 0); the others measure the model. The
    normalisers take in the whole minibatch first (statistics, no targets fitted)."""
    norm = observe(model.norm, inputs, targets)
    size = inputs.shape[0]
    picks = jax.random.randint(key, (net.members, size), 0, size)
    counts = jax.vmap(lambda p: jnp.zeros(size).at[p].add(1.0))(picks)  # bootstrap counts [M, B]
    loss_fn = lambda p, w: ensemble_loss(net, p, norm, inputs, targets, w)
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(model.params, counts * train)
    updates, opt_state = optimizer.update(grads, model.opt_state, model.params)
    params = optax.apply_updates(model.params, updates)

    valid = 1.0 - train
    _, held = loss_fn(params, jnp.broadcast_to(valid, counts.shape))
    x = (inputs - norm.inputs.mean) / _scale(norm.inputs)
    mean, _ = _apply(net, params, jnp.broadcast_to(x, (net.members, *x.shape)))
    some = valid.sum() > 0
    nan = jnp.asarray(jnp.nan, jnp.float32)
    metrics = {
        "model_loss": loss,
        "model_nll": parts["nll"],
        "model_mse": parts["mse"],
        "heldout_nll": jnp.where(some, held["nll"], nan),
        "heldout_mse": jnp.where(some, held["mse"], nan),
        "disagreement": disagreement(mean).mean(),
    }
    return ModelState(params, norm, opt_state), metrics


def sample_member_step(
    net: GaussianEnsemble,
    params: dict,
    norm: Normalizers,
    obs: jax.Array,
    action: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """One model step of a batch `[B, ...]`, each row through a member drawn at random (MBPO's
    rollouts): sampled next observations `[B, obs_dim]` and mean rewards `[B]`."""
    member_key, noise_key = jax.random.split(key)
    mean, var = predict(net, params, norm, obs, action)  # [M, B, O]
    member = jax.random.randint(member_key, (obs.shape[0],), 0, net.members)
    rows = jnp.arange(obs.shape[0])
    return _draw(obs, mean[member, rows], var[member, rows], noise_key)
