"""The Recurrent Attention Model (Mnih, Heess, Graves and Kavukcuoglu, 2014): classify an image
from a few glimpses, choosing where to look next with REINFORCE.

The model, for one image x (canvas coordinates scaled to [-1, 1]):

    l_0 ~ U([-1, 1]^2)                              the first glimpse: anywhere   -> `unroll`
    for t = 0 .. T-1:
        rho(x, l_t): k patches of side g, 2g, ..., 2^(k-1) g centred at l_t,
                     each averaged down to g x g                               -> `retina`
        g_t = relu(W_g relu(W_x rho) + W_gl relu(W_l l_t))   glimpse network  -> `RAMNet.glimpse`
        h_t = relu(W_h h_{t-1} + W_hg g_t)                     core network    -> `RAMNet.core`
        l_{t+1} ~ N(tanh(W_loc h_t), sigma^2 I)              location policy -> `RAMNet.locate`
        b_t = W_b h_t                                           baseline      -> `RAMNet.baseline`
    p(y | x) = softmax(W_a h_{T-1})                           classifier      -> `RAMNet.classify`

    R = 1 if argmax p = y, else 0                              the episode's one reward
    loss = -log p(y | x)                             backprop: classifier, core, glimpse -> `loss`
         - sum_{t<T-1} log pi(l_{t+1} | h_t) (R - b_t)      REINFORCE, R - b_t held fixed
         + sum_{t<T-1} (R - b_t)^2                           the baseline's regression

The sensor reads pixels at rounded positions, so nothing differentiates the glimpse with respect
to where it was taken: the locations are a choice, learned only by REINFORCE (the gradient of
E[R] through the sampled l), while the classifier and the representation it reads are trained by
backpropagation of the labels' log-likelihood, the paper's hybrid loss. As in the common
implementations, the REINFORCE and baseline terms update only the location and baseline layers
(h_t enters them with its gradient stopped), so the noisy policy gradient does not reach the
core. With `locations = "random"` every l_t is uniform in [-1, 1]^2 and the loss is the
classification term alone: the same classifier, trained the same way, without attention.

RAM learns from labelled images: the offline runner's minibatches (obs: the image, action: its
label), on `TranslatedDigits-v0` (`bellman.envs.digits`), whose episodes score the learned
classifier on held-out digits (the mean return is the test accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from bellman import config as cfg
from bellman.buffers import Batch
from bellman.contracts import DataStats, OfflineLoop
from bellman.envs.spaces import Discrete, EnvSpec, describe
from bellman.errors import EnvError


@dataclass(frozen=True)
class RAMConfig(OfflineLoop):
    """RAM's settings. The model's sizes are the paper's for translated MNIST (glimpse layers of
    128, a glimpse vector and core of 256, 12 x 12 patches); Adam replaces its momentum SGD."""

    batch_size: int = 128
    """Images per gradient step."""
    learning_rate: float = 3e-4
    """Adam step size."""
    glimpses: int = 6
    """Glimpses per image, T (the first at a uniformly random place)."""
    glimpse_size: int = 12
    """Side g of the finest patch, in pixels; every patch is averaged down to g x g."""
    scales: int = 2
    """Patches per glimpse, k: sides g, 2g, ..., 2^(k-1) g."""
    glimpse_hidden: int = 128
    """Width of the glimpse network's what and where layers."""
    hidden: int = 256
    """Width of the glimpse vector and of the recurrent core."""
    location_std: float = 0.15
    """Standard deviation sigma of the location policy, in the [-1, 1] coordinates (0.15 is
    4.5 pixels on a 60-pixel canvas)."""
    locations: Literal["learned", "random"] = "learned"
    """Where the glimpses go: chosen by the location policy, or uniformly at random (the
    control without attention: classification loss alone)."""

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type or out of range."""
        super().validate()
        cfg.positive(self, "learning_rate", "location_std")
        cfg.at_least(self, 1, "glimpses", "glimpse_size", "scales", "glimpse_hidden", "hidden")


Config = RAMConfig
DEFAULT_STEPS = 20_000
"""Gradient steps per seed."""


def check_env(config: Any, spec: EnvSpec) -> None:
    """Raise EnvError unless observations are images `[H, W]` (or `[H, W, 1]`) of a glimpse's
    size at least and the actions are classes (Discrete)."""
    if not isinstance(spec.action_space, Discrete):
        raise EnvError(
            f"ram classifies: its actions are classes (Discrete), not "
            f"{describe(spec.action_space)} of '{spec.id}'"
        )
    shape = spec.obs_shape
    if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] == 1)):
        raise EnvError(f"ram looks at grey images [H, W]; '{spec.id}' observes shape {shape}")
    if min(shape[:2]) < config.glimpse_size:
        raise EnvError(
            f"ram's glimpse_size ({config.glimpse_size}) is larger than the images of "
            f"'{spec.id}' ({shape[0]} x {shape[1]})"
        )


class RAMNet(nn.Module):
    """The glimpse network, the core, and the location, baseline and classifier heads."""

    glimpse_hidden: int
    hidden: int
    classes: int

    def setup(self) -> None:
        self.what = nn.Dense(self.glimpse_hidden)
        self.where = nn.Dense(self.glimpse_hidden)
        self.from_what = nn.Dense(self.hidden)
        self.from_where = nn.Dense(self.hidden)
        self.recur = nn.Dense(self.hidden)
        self.read = nn.Dense(self.hidden, use_bias=False)
        self.locator = nn.Dense(2)
        self.critic = nn.Dense(1)
        self.classifier = nn.Dense(self.classes)

    def glimpse(self, patches: jax.Array, location: jax.Array) -> jax.Array:
        what = nn.relu(self.what(patches))
        where = nn.relu(self.where(location))
        return nn.relu(self.from_what(what) + self.from_where(where))

    def core(self, h: jax.Array, g: jax.Array) -> jax.Array:
        return nn.relu(self.recur(h) + self.read(g))

    def locate(self, h: jax.Array) -> jax.Array:
        return jnp.tanh(self.locator(jax.lax.stop_gradient(h)))

    def baseline(self, h: jax.Array) -> jax.Array:
        return self.critic(jax.lax.stop_gradient(h))[..., 0]

    def classify(self, h: jax.Array) -> jax.Array:
        return self.classifier(h)

    def __call__(self, patches: jax.Array, location: jax.Array) -> Any:
        """Every layer once (for `init`)."""
        h = self.core(
            jnp.zeros((*patches.shape[:-1], self.hidden)), self.glimpse(patches, location)
        )
        return self.locate(h), self.baseline(h), self.classify(h)


class RAMState(struct.PyTreeNode):
    params: Any
    opt: optax.OptState
    gradient_step: jax.Array


def network(config: Any, spec: EnvSpec) -> RAMNet:
    assert isinstance(spec.action_space, Discrete)
    return RAMNet(config.glimpse_hidden, config.hidden, spec.action_space.n)


def _optimizer(config: Any) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def init(key: jax.Array, config: Any, spec: EnvSpec, total_updates: int) -> RAMState:
    patches = jnp.zeros((1, config.scales * config.glimpse_size**2), jnp.float32)
    params = network(config, spec).init(key, patches, jnp.zeros((1, 2), jnp.float32))
    return RAMState(params, _optimizer(config).init(params), jnp.zeros((), jnp.int32))


def prepare(config: Any, spec: EnvSpec, state: RAMState, stats: DataStats) -> RAMState:
    """Nothing is taken from the dataset's statistics (the sensor scales pixels itself)."""
    return state


# ----- the sensor -----


def images_of(spec: EnvSpec, obs: jax.Array) -> jax.Array:
    """Observations `[B, H, W(, 1)]` as float images `[B, H, W]` in [0, 1] (uint8 / 255)."""
    x = obs.reshape(obs.shape[0], spec.obs_shape[0], spec.obs_shape[1])
    return x.astype(jnp.float32) / (255.0 if spec.obs_dtype == "uint8" else 1.0)


def pixel_center(location: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """[-1, 1] coordinates (row, column) -> the pixel a glimpse is centred on, each in
    [0, side] for an image of `shape` (H, W)."""
    side = jnp.asarray(shape[:2], jnp.float32)
    return jnp.round((location + 1.0) * 0.5 * side).astype(jnp.int32)


def retina(config: Any, image: jax.Array, location: jax.Array) -> jax.Array:
    """rho(x, l) of one image `[H, W]` at `location` `[2]` (row, column in [-1, 1]): the
    `scales` patches centred there, each averaged down to `glimpse_size` squared, flattened and
    concatenated (`[scales * g * g]`). Outside the image the patches read zeros."""
    g = config.glimpse_size
    largest = g * 2 ** (config.scales - 1)
    pad = largest // 2 + 1
    padded = jnp.pad(image, pad)
    center = pixel_center(location, image.shape) + pad
    out = []
    for i in range(config.scales):
        side, block = g * 2**i, 2**i
        patch = jax.lax.dynamic_slice(padded, center - side // 2, (side, side))
        out.append(patch.reshape(g, block, g, block).mean(axis=(1, 3)).reshape(-1))
    return jnp.concatenate(out)


# ----- the model over T glimpses -----


class Unroll(struct.PyTreeNode):
    """What T glimpses of a batch produced."""

    logits: jax.Array
    """`[B, classes]` the classifier's logits after the last glimpse."""
    locations: jax.Array
    """`[B, T, 2]` where each glimpse was taken."""
    log_probs: jax.Array
    """`[B, T - 1]` log pi(l_{t+1} | h_t) of the chosen locations (0 for random ones)."""
    baselines: jax.Array
    """`[B, T - 1]` b_t."""


def gaussian_log_prob(x: jax.Array, mean: jax.Array, std: Any) -> jax.Array:
    """log N(x; mean, std^2 I), summed over the last axis."""
    z = (x - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * math.log(2 * math.pi), axis=-1)


def unroll(
    config: Any, spec: EnvSpec, params: Any, obs: jax.Array, key: jax.Array, explore: bool
) -> Unroll:
    """The T glimpses of a batch of images: locations sampled from the policy (`explore`) or
    at its mean (evaluation); uniformly random ones with `locations = "random"`."""
    net = network(config, spec)
    images = images_of(spec, obs)
    batch = images.shape[0]
    first_key, key = jax.random.split(key)
    first = jax.random.uniform(first_key, (batch, 2), minval=-1.0, maxval=1.0)
    sense = jax.vmap(lambda image, location: retina(config, image, location))

    def apply(method: Any, *args: jax.Array) -> jax.Array:
        return cast(jax.Array, net.apply(params, *args, method=method))

    def step(carry: Any, step_key: jax.Array) -> Any:
        h, location = carry
        g = apply(RAMNet.glimpse, sense(images, location), location)
        h = apply(RAMNet.core, h, g)
        baseline = apply(RAMNet.baseline, h)
        if config.locations == "random":
            chosen = jax.random.uniform(step_key, (batch, 2), minval=-1.0, maxval=1.0)
            log_prob = jnp.zeros((batch,))
        else:
            mean = apply(RAMNet.locate, h)
            noise = config.location_std * jax.random.normal(step_key, (batch, 2))
            sample = jax.lax.stop_gradient(mean + noise) if explore else mean
            log_prob = gaussian_log_prob(jax.lax.stop_gradient(sample), mean, config.location_std)
            chosen = jnp.clip(jax.lax.stop_gradient(sample), -1.0, 1.0)
        return (h, chosen), (location, log_prob, baseline)

    h0 = jnp.zeros((batch, config.hidden), jnp.float32)
    keys = jax.random.split(key, config.glimpses)
    (h, _), (locations, log_probs, baselines) = jax.lax.scan(step, (h0, first), keys)
    logits = apply(RAMNet.classify, h)
    # the location chosen after the last glimpse is never looked at: not part of the episode
    return Unroll(
        logits=logits,
        locations=jnp.swapaxes(locations, 0, 1),
        log_probs=jnp.swapaxes(log_probs[:-1], 0, 1),
        baselines=jnp.swapaxes(baselines[:-1], 0, 1),
    )


def reinforce_loss(log_probs: jax.Array, advantages: jax.Array) -> jax.Array:
    """-mean_b sum_t log pi(l_t) A_t, A held fixed: its gradient is REINFORCE's estimate of
    -grad E[R] (with the baseline subtracted)."""
    return -jnp.mean(jnp.sum(log_probs * jax.lax.stop_gradient(advantages), axis=-1))


def loss(
    params: Any, config: Any, spec: EnvSpec, obs: jax.Array, label: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The hybrid loss of a minibatch of labelled images, and metrics."""
    out = unroll(config, spec, params, obs, key, explore=True)
    log_p = jax.nn.log_softmax(out.logits)
    label = label.astype(jnp.int32)
    classification = -jnp.mean(jnp.take_along_axis(log_p, label[:, None], axis=-1)[:, 0])
    reward = (jnp.argmax(out.logits, axis=-1) == label).astype(jnp.float32)
    advantage = reward[:, None] - out.baselines
    policy = reinforce_loss(out.log_probs, advantage)
    baseline = jnp.mean(jnp.sum(advantage**2, axis=-1))
    learned = config.locations == "learned"
    total = classification + (policy + baseline if learned else 0.0)
    metrics = {
        "classification_loss": classification,
        "reinforce_loss": policy,
        "baseline_loss": baseline,
        "accuracy": jnp.mean(reward),
        "baseline_mean": jnp.mean(out.baselines),
        "location_abs_mean": jnp.mean(jnp.abs(out.locations)),
    }
    return total, metrics


def learn(
    config: Any, spec: EnvSpec, state: RAMState, batch: Batch, key: jax.Array
) -> tuple[RAMState, dict[str, jax.Array]]:
    """One gradient step of the hybrid loss on a minibatch (obs: images, action: labels)."""
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(
        state.params, config, spec, batch.obs, batch.action, key
    )
    updates, opt = _optimizer(config).update(grads, state.opt, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(params=params, opt=opt, gradient_step=state.gradient_step + 1)
    return new_state, {"ram_loss": value, **metrics}


def classify(
    config: Any, spec: EnvSpec, state: RAMState, obs: jax.Array, key: jax.Array
) -> jax.Array:
    """The class after T glimpses, each at the location policy's mean (the first at random)."""
    out = unroll(config, spec, state.params, obs, key, explore=False)
    return jnp.argmax(out.logits, axis=-1).astype(jnp.int32)


def greedy(config: Any, spec: EnvSpec, state: RAMState, obs: jax.Array) -> jax.Array:
    """`classify` with a fixed key (the first glimpse's place, and every place of the random
    control, drawn from it)."""
    return classify(config, spec, state, obs, jax.random.PRNGKey(0))


evaluation_action = classify
"""A run reports the accuracy of `classify`, its first glimpses drawn from the evaluation's
keys."""
evaluation_memory = None


def glimpse_paths(
    config: Any, spec: EnvSpec, state: RAMState, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Where `classify` looks, `[B, T, 2]` in [-1, 1] (row, column), and what it answers `[B]`."""
    out = unroll(config, spec, state.params, obs, key, explore=False)
    return out.locations, jnp.argmax(out.logits, axis=-1).astype(jnp.int32)
