"""Imitation with an expert: DAgger's aggregation and sampling on hand numbers, DAgger and GAIL
learning the probes, refusals, and DAgger's resume after SIGKILL."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman.contracts import DataStats
from bellman.errors import ConfigError
from bellman.runners import dagger
from tests.conftest import assert_resume_is_exact
from tests.test_offline import obs_action_dataset


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A behaviour-cloned expert of probe/ObsAction-v0 (return 1) and its demonstrations."""
    root = tmp_path_factory.mktemp("expert")
    demos = obs_action_dataset(root / "demos")
    run = bellman.train(
        "bc", "probe/ObsAction-v0", dataset=demos, steps=300, evals=0, learning_rate=1e-2,
        hidden_sizes=(16,), out=root / "bc", progress=False,
    )  # fmt: skip
    assert run.summary["final_return_mean"] == 1.0
    return root / "bc", demos


def test_the_aggregate_keeps_the_newest_labels_and_samples_demonstrations_and_labels() -> None:
    """A ring of 4 after 3 + 3 labelled states holds the last 4 (slots 3, 4, 5 then 2: the
    states 4, 5, 2, 3 in slot order); a draw covers the 2 demonstrations and the 4 held."""
    memory = dagger.Aggregate(
        jnp.zeros((4, 1)), jnp.zeros((4,), jnp.int32), jnp.zeros((), jnp.int32)
    )
    memory = dagger.aggregate(memory, jnp.arange(3.0)[:, None], jnp.arange(3))
    memory = dagger.aggregate(memory, jnp.arange(3.0, 6.0)[:, None], jnp.arange(3, 6))
    np.testing.assert_array_equal(memory.obs[:, 0], [4.0, 5.0, 2.0, 3.0])
    np.testing.assert_array_equal(memory.action, [4, 5, 2, 3])
    assert int(memory.count) == 6
    stats = DataStats(jnp.zeros(1), jnp.ones(1), jnp.asarray(2), jnp.asarray(0.0), jnp.asarray(0.0))
    data = dagger.DaggerData(
        None,
        jnp.asarray([[-1.0], [-2.0]]),
        jnp.asarray([7, 8]),
        stats,  # type: ignore[arg-type]
    )

    class Config:
        batch_size = 4000

    import jax

    obs, action = dagger.sample(Config(), memory, data, jax.random.PRNGKey(0))
    seen = {(float(o), int(a)) for o, a in zip(obs[:, 0], action, strict=True)}
    assert seen == {(-1.0, 7), (-2.0, 8), (4.0, 4), (5.0, 5), (2.0, 2), (3.0, 3)}
    counts = np.bincount(np.asarray(action))[[2, 3, 4, 5, 7, 8]]
    assert counts.min() > 4000 / 6 * 0.8  # uniform over the six


def test_dagger_learns_from_the_expert_alone(expert: tuple[Path, Path], tmp_path: Path) -> None:
    """No demonstrations: the first round is the expert's own play (beta 1), labelled; the
    cloned policy is right in every episode, and the labels are counted."""
    run = bellman.train(
        "dagger", "probe/ObsAction-v0", expert=expert[0], steps=512, seeds=2, evals=0,
        num_envs=8, num_steps=16, gradient_steps=100, learning_rate=1e-2, hidden_sizes=(16,),
        out=tmp_path / "dagger", progress=False,
    )  # fmt: skip
    assert run.summary["final_return_per_seed"] == [1.0, 1.0]
    last = run.metrics[-2]
    assert last["expert_labels"] == [512.0, 512.0]
    assert min(last["expert_agreement"]) == 1.0
    assert last["beta"][0] == pytest.approx(0.5**3)  # the fourth round's


def test_gail_imitates_the_demonstrations_without_rewards(
    expert: tuple[Path, Path], tmp_path: Path
) -> None:
    """The discriminator's reward alone (the env's is never seen) teaches PPO the
    observation-dependent action of the demonstrations."""
    run = bellman.train(
        "gail", "probe/ObsAction-v0", dataset=expert[1], steps=16384, seeds=2, evals=0,
        num_envs=8, num_steps=16, out=tmp_path / "gail", progress=False,
    )  # fmt: skip
    assert run.summary["final_return_per_seed"] == [1.0, 1.0]
    last = run.metrics[-2]
    assert {"disc_loss", "imitation_reward", "env_reward"} <= set(last)


def test_what_imitation_refuses(expert: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="imitates an expert: give --expert RUN_DIR"):
        bellman.train("dagger", "probe/ObsAction-v0", progress=False, out=tmp_path / "a")
    with pytest.raises(ConfigError, match="was trained on probe/ObsAction-v0, not on CartPole"):
        bellman.train("dagger", "CartPole-v1", expert=expert[0], progress=False)
    with pytest.raises(ConfigError, match="--expert is dagger's"):
        bellman.train("ppo", "CartPole-v1", expert=expert[0], progress=False)
    with pytest.raises(ConfigError, match="gail learns from a dataset: give --dataset"):
        bellman.train("gail", "probe/ObsAction-v0", progress=False, out=tmp_path / "b")


def test_dagger_resume_after_sigkill_continues_exactly(
    expert: tuple[Path, Path], tmp_path: Path
) -> None:
    """The learner, its optimiser, the aggregate memory, the round and the keys come back; the
    expert and the demonstrations are read again: the resumed run ends bit for bit where an
    uninterrupted one ends."""
    args = [
        "train", "dagger", "--env", "probe/ObsAction-v0", "--expert", str(expert[0]),
        "--dataset", str(expert[1]), "--steps", "10240", "--num-envs", "4", "--num-steps", "16",
        "--gradient-steps", "20", "--hidden-sizes", "16", "--log-every", "320",
        "--checkpoint-every", "1280", "--evals", "0", "--eval-episodes", "1", "--quiet",
    ]  # fmt: skip
    assert_resume_is_exact(args, "dagger", tmp_path, 20, 160)  # updates: rounds of 64 steps
