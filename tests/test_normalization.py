"""Running mean and variance against numpy on the concatenated data."""

from __future__ import annotations

import jax
import numpy as np

from bellman.ops import normalization


def test_running_statistics_equal_the_whole_data_statistics() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) for n in (7, 100, 33)]
    stats = normalization.RunningMeanStd.create((4,))
    update = jax.jit(normalization.update)
    for batch in batches:
        stats = update(stats, batch)
    data = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-3)
    np.testing.assert_allclose(stats.count, len(data), rtol=1e-4)


def test_normalize_standardises_and_clips() -> None:
    stats = normalization.RunningMeanStd.create((2,))
    stats = normalization.update(stats, np.array([[0.0, 10.0], [2.0, 30.0]], np.float32))
    z = normalization.normalize(stats, np.array([[2.0, 20.0], [1e6, 20.0]], np.float32))
    np.testing.assert_allclose(z[0], [1.0, 0.0], atol=1e-3)
    assert z[1, 0] == 10.0
