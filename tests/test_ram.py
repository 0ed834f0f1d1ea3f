"""The Recurrent Attention Model (bellman.algos.ram) and its task (bellman.envs.digits)."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.algos import ram
from bellman.envs import digits
from bellman.envs.spaces import Discrete, EnvSpec
from tests.conftest import run_cli

SPEC = EnvSpec("images", (60, 60), "uint8", Discrete(10), 1)


def test_the_retina_reads_the_patches_around_its_centre() -> None:
    """rho(x, l): the finest patch is the g x g square of pixels centred at l, the next the
    2g x 2g square averaged in 2 x 2 blocks; outside the image it reads zeros."""
    config = ram.RAMConfig(glimpse_size=4, scales=2)
    image = jnp.arange(400, dtype=jnp.float32).reshape(20, 20)
    # centre pixel (10, 6): l = 2 * centre / side - 1
    location = jnp.array([0.0, 2 * 6 / 20 - 1])
    glimpse = ram.retina(config, image, location)
    np.testing.assert_array_equal(glimpse[:16].reshape(4, 4), image[8:12, 4:8])
    coarse = image[6:14, 2:10].reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(glimpse[16:].reshape(4, 4), coarse)
    corner = ram.retina(config, image, jnp.array([-1.0, -1.0]))[:16].reshape(4, 4)
    np.testing.assert_array_equal(corner[:2], 0.0)  # above the image
    np.testing.assert_array_equal(corner[2:, 2:], image[:2, :2])


def test_reinforces_location_gradient_matches_a_finite_difference_estimate() -> None:
    """On a tiny case, the gradient of RAM's REINFORCE loss with respect to the location
    layer's weights is -grad E[R(l)], l ~ N(tanh(W h), sigma^2): compared with central finite
    differences of E[R] (common random numbers, so both estimates share their noise)."""
    config = ram.RAMConfig(glimpse_hidden=4, hidden=3, location_std=0.2)
    net = ram.RAMNet(config.glimpse_hidden, config.hidden, 10)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)), jnp.zeros((1, 2)))
    h = jnp.array([[0.5, -1.0, 0.8]])
    target = jnp.array([0.3, -0.4])
    reward = lambda x: jnp.exp(-jnp.sum((x - target) ** 2, axis=-1) / 0.1)
    noise = jax.random.normal(jax.random.PRNGKey(1), (400_000, 2))

    def expected_reward(params: object) -> jax.Array:
        mean = net.apply(params, h, method=ram.RAMNet.locate)
        return jnp.mean(reward(mean + config.location_std * noise))

    def surrogate(params: object) -> jax.Array:
        mean = net.apply(params, h, method=ram.RAMNet.locate)
        sample = jax.lax.stop_gradient(mean + config.location_std * noise)
        log_prob = ram.gaussian_log_prob(sample, mean, config.location_std)
        return ram.reinforce_loss(log_prob[:, None], reward(sample)[:, None])

    grads = jax.grad(surrogate)(params)["params"]["locator"]["kernel"]
    eps = 1e-3
    kernel = params["params"]["locator"]["kernel"]
    for i, j in np.ndindex(*kernel.shape):
        shifted = [
            jax.tree.map(lambda x: x, params) for _ in range(2)
        ]  # copies whose (i, j) weight moves by -eps and +eps
        for copy, sign in zip(shifted, (-1.0, 1.0), strict=True):
            copy["params"]["locator"]["kernel"] = kernel.at[i, j].add(sign * eps)
        finite = (expected_reward(shifted[1]) - expected_reward(shifted[0])) / (2 * eps)
        # 400,000 samples: the score-function estimate's standard error is below 0.01 here
        assert abs(float(-grads[i, j]) - float(finite)) < 0.03, (i, j, grads[i, j], finite)
    assert float(jnp.max(jnp.abs(grads))) > 0.1  # the case has a gradient to get right


def test_the_policy_gradient_reaches_only_the_location_and_baseline_layers() -> None:
    """The labels train the classifier, core and glimpse network; REINFORCE and the baseline's
    regression train the location and baseline layers only; the random control trains no
    location layer."""
    config = ram.RAMConfig(glimpse_hidden=8, hidden=16, glimpses=3)
    state = ram.init(jax.random.PRNGKey(0), config, SPEC, 1)
    obs = jax.random.randint(jax.random.PRNGKey(1), (8, 60, 60), 0, 256).astype(jnp.uint8)
    label = jnp.arange(8) % 10

    def parts(params: object, config: ram.RAMConfig) -> dict[str, jax.Array]:
        out = ram.unroll(config, SPEC, params, obs, jax.random.PRNGKey(2), explore=True)
        reward = jnp.ones((8,))
        advantage = reward[:, None] - out.baselines
        log_p = jax.nn.log_softmax(out.logits)
        return {
            "policy": ram.reinforce_loss(out.log_probs, advantage),
            "baseline": jnp.mean(jnp.sum(advantage**2, axis=-1)),
            "labels": -jnp.mean(jnp.take_along_axis(log_p, label[:, None], axis=-1)),
        }

    def norms(term: str, config: ram.RAMConfig) -> dict[str, float]:
        grads = jax.grad(lambda p: parts(p, config)[term])(state.params)["params"]
        return {
            k: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(g))) for k, g in grads.items()
        }

    policy, baseline, labels = (norms(t, config) for t in ("policy", "baseline", "labels"))
    assert {k for k, v in policy.items() if v > 0} == {"locator"}
    assert {k for k, v in baseline.items() if v > 0} == {"critic"}
    assert {k for k, v in labels.items() if v > 0} == {
        "what", "where", "from_what", "from_where", "recur", "read", "classifier",
    }  # fmt: skip
    random = dataclasses.replace(config, locations="random")
    assert norms("policy", random)["locator"] == 0.0


def test_translated_digits_places_whole_digits_and_scores_the_label() -> None:
    env = digits.TranslatedDigits()
    state, ts = env.reset(jax.random.PRNGKey(3))
    canvas = np.asarray(ts.obs)
    rows, cols = np.nonzero(canvas)
    assert canvas.shape == (60, 60) and canvas.dtype == np.uint8
    assert rows.max() - rows.min() < digits.DIGIT and cols.max() - cols.min() < digits.DIGIT
    _, right = env.step(jax.random.PRNGKey(4), state, state.label)
    _, wrong = env.step(jax.random.PRNGKey(4), state, (state.label + 1) % 10)
    assert float(right.reward) == 1.0 and float(wrong.reward) == 0.0
    assert bool(right.terminated) and bool(wrong.terminated)
    train, test = digits.split(test=False), digits.split(test=True)
    assert len(train[1]) == 1437 and len(test[1]) == 360
    data = env.training_set()
    assert len(data) == 1437 * digits.PLACEMENTS
    # the training canvases are the training digits, at different places
    first = data.obs[0][np.nonzero(data.obs[0])]
    assert np.array_equal(np.sort(first), np.sort(train[0][0][np.nonzero(train[0][0])]))
    assert not np.array_equal(data.obs[0], data.obs[1437])
    assert data.action[0] == data.action[1437] == train[1][0]


@pytest.mark.slow
def test_ram_learns_to_read_translated_digits(tmp_path: object) -> None:
    """A short run from the command line: the run directory, its glimpse figure, and a test
    accuracy far above chance (0.1) after 1,500 gradient steps."""
    out = tmp_path / "ram"  # type: ignore[operator]
    result = run_cli(
        "train", "ram", "--env", "TranslatedDigits-v0", "--steps", "1500", "--seeds", "2",
        "--eval-episodes", "200", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_return_mean"] > 0.5, summary
    assert (out / "glimpses.png").stat().st_size > 10_000
