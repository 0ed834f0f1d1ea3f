"""TranslatedDigits-v0: classify a handwritten digit placed somewhere in a larger, empty canvas.

The translated-MNIST task of Mnih et al. (2014, "Recurrent Models of Visual Attention") made from
the digits that ship inside scikit-learn (`sklearn.datasets.load_digits`: 1,797 8 x 8 images of
the UCI handwritten digits, 0..16 ink), so nothing is downloaded:

- each 8 x 8 digit is upscaled 3x (bilinear) to 24 x 24 and placed, top-left corner uniform over
  the positions that keep it whole, in a 60 x 60 canvas (the paper's size for 28 x 28 MNIST);
- observation: the canvas, uint8 [60, 60] (0 blank, 255 full ink);
- action: Discrete(10), the class; reward 1 if it is the digit's label, else 0; the episode ends
  (terminated) after that one step, so the mean return is the classification accuracy;
- split: every fifth digit of scikit-learn's order (360) is the test set, the episodes' digits;
  the other 1,437 are the training set (`training_set`), which the learners read as a dataset of
  labelled canvases (`runners.offline`), each digit at `PLACEMENTS` random positions.

A learner that reads the whole canvas is a plain classifier (`bellman train bc`); the Recurrent
Attention Model (`bellman train ram`) sees it through a few glimpses only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bellman.datasets import Transitions
from bellman.envs.core import TimeStep, auto_reset
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.errors import EnvError

ENV_ID = "TranslatedDigits-v0"
CANVAS = 60
"""Side of the canvas, in pixels."""
SCALE = 3
"""Upscaling factor of scikit-learn's 8 x 8 digits."""
DIGIT = 8 * SCALE
"""Side of a placed digit."""
TEST_EVERY = 5
"""Every fifth digit (in scikit-learn's order) is a test digit."""
PLACEMENTS = 10
"""Random placements of each training digit in the training set."""
TRAINING_SEED = 0
"""The seed of the training set's placements (fixed: a resumed run reads the same set)."""


@functools.cache
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits upscaled, uint8 `[1797, 24, 24]`, and their labels int32 `[1797]`."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EnvError(
            f"{ENV_ID} is made from scikit-learn's digits: pip install 'bellman[digits]'"
        ) from None
    digits = load_digits()
    images = jnp.asarray(digits.images / 16.0, jnp.float32)
    big = jax.image.resize(images, (len(images), DIGIT, DIGIT), "bilinear")
    pixels = np.asarray(jnp.clip(jnp.round(big * 255.0), 0, 255)).astype(np.uint8)
    return pixels, np.asarray(digits.target, np.int32)


def split(test: bool) -> tuple[np.ndarray, np.ndarray]:
    """The test digits (every `TEST_EVERY`-th) or the training ones, with their labels."""
    images, labels = digit_images()
    chosen = (np.arange(len(labels)) % TEST_EVERY == 0) == test
    return images[chosen], labels[chosen]


def place(digit: jax.Array, corner: jax.Array) -> jax.Array:
    """A `DIGIT` x `DIGIT` image in an empty `CANVAS` x `CANVAS` canvas, its top-left corner at
    `corner` (row, column)."""
    canvas = jnp.zeros((CANVAS, CANVAS), digit.dtype)
    return jax.lax.dynamic_update_slice(canvas, digit, (corner[0], corner[1]))


def random_corner(key: jax.Array) -> jax.Array:
    """A top-left corner uniform over the positions that keep the digit inside the canvas."""
    return jax.random.randint(key, (2,), 0, CANVAS - DIGIT + 1)


class DigitsState(struct.PyTreeNode):
    label: jax.Array


class TranslatedDigits:
    """The JAX env: one test digit per episode, one step, reward 1 for the right class."""

    def __init__(self) -> None:
        self.spec = EnvSpec(ENV_ID, (CANVAS, CANVAS), "uint8", Discrete(10), 1)
        images, labels = split(test=True)
        self.images, self.labels = jnp.asarray(images), jnp.asarray(labels)

    @property
    def cache_key(self) -> str:
        return f"{ENV_ID} canvas={CANVAS} scale={SCALE} test-every={TEST_EVERY}"

    def reset(self, key: jax.Array) -> tuple[DigitsState, TimeStep]:
        pick, where = jax.random.split(key)
        i = jax.random.randint(pick, (), 0, self.labels.shape[0])
        obs = place(self.images[i], random_corner(where))
        false = jnp.zeros((), bool)
        return DigitsState(self.labels[i]), TimeStep(obs, jnp.zeros(()), false, false, obs, {})

    def step(
        self, key: jax.Array, state: DigitsState, action: jax.Array
    ) -> tuple[DigitsState, TimeStep]:
        reward = (action == state.label).astype(jnp.float32)
        # the episode ends here; the observation a step would show is not used (`final_obs`)
        blank = jnp.zeros(self.spec.obs_shape, jnp.uint8)
        true = jnp.ones((), bool)
        ts = TimeStep(blank, reward, true, jnp.zeros((), bool), blank, {})
        return auto_reset(self, key, state, ts)

    def training_set(self) -> Transitions:
        """The training digits, each at `PLACEMENTS` random positions, as one-step episodes
        whose action is the label (reward 1): what a learner of labelled canvases reads."""
        images, labels = split(test=False)
        n = len(labels) * PLACEMENTS
        index = np.tile(np.arange(len(labels)), PLACEMENTS)
        keys = jax.random.split(jax.random.PRNGKey(TRAINING_SEED), n)
        corners = jax.vmap(random_corner)(keys)
        obs = np.asarray(jax.jit(jax.vmap(place))(jnp.asarray(images[index]), corners))
        return Transitions(
            obs=obs,
            action=labels[index],
            reward=np.ones(n, np.float32),
            next_obs=np.zeros_like(obs),
            terminated=np.ones(n, bool),
            truncated=np.zeros(n, bool),
        )
