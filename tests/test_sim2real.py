"""Domain randomisation, observation and action noise, action delay, and robustness maps."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman.envs import sim2real
from bellman.envs.gymnax_env import GymnaxEnv
from bellman.errors import ConfigError
from tests.conftest import assert_resume_is_exact, run_cli

KEY = jax.random.PRNGKey(0)

# A value for each randomizable parameter far from its default, and a state and action at which
# the parameter changes what the next step returns (its observation, reward or termination).
CARTPOLE = {
    "gravity": 20.0,
    "masscart": 3.0,
    "masspole": 0.6,
    "length": 1.5,
    "force_mag": 3.0,
    "tau": 0.05,
    "theta_threshold_radians": 0.1,  # the state's angle 0.15 ends the episode
    "x_threshold": 1.0,  # the state's position 2.0 ends the episode
}
PENDULUM = {
    "max_speed": 0.5,  # the state's speed 3.0 is clipped
    "max_torque": 0.5,  # the action 2.0 is clipped
    "dt": 0.1,
    "g": 5.0,
    "m": 3.0,
    "l": 2.0,
}


def cartpole_state(env: GymnaxEnv) -> object:
    state, _ = env.reset(KEY)
    return state.replace(x=jnp.float32(2.0), theta=jnp.float32(0.15), theta_dot=jnp.float32(0.3))


def pendulum_state(env: GymnaxEnv) -> object:
    state, _ = env.reset(KEY)
    return state.replace(theta=jnp.float32(1.0), theta_dot=jnp.float32(3.0))


def step_randomized(env: GymnaxEnv, name: str, value: float, inner: object, action: object):
    """One step of the randomization wrapper drawing `name` = `value`, from the inner state."""
    wrapped = sim2real.DomainRandomization(env, {name: (value, value)})
    state, _ = wrapped.reset(KEY)
    state = state.replace(env_state=inner)
    return wrapped.step(jax.random.PRNGKey(1), state, action)


def outcome(ts) -> np.ndarray:
    return np.concatenate(
        [np.ravel(ts.final_obs), [ts.reward, ts.terminated, ts.truncated]]
    ).astype(np.float64)


@pytest.mark.parametrize(
    ("env_id", "values", "make_state", "action"),
    [
        ("CartPole-v1", CARTPOLE, cartpole_state, jnp.int32(1)),
        ("Pendulum-v1", PENDULUM, pendulum_state, jnp.array([2.0], jnp.float32)),
    ],
)
def test_each_randomized_parameter_changes_the_dynamics(env_id, values, make_state, action):
    env = GymnaxEnv(env_id)
    randomizable = [
        name
        for name, value in vars(env.params).items()
        if isinstance(value, float) and name not in ("total_mass", "polemass_length")
    ]
    assert sorted(values) == sorted(randomizable)  # every one is checked
    inner = make_state(env)
    _, nominal = env.step_with(jax.random.PRNGKey(1), inner, action, env.params)
    for name, value in values.items():
        _, drawn = step_randomized(env, name, value, inner, action)
        assert not np.allclose(outcome(drawn), outcome(nominal)), name
        # and it is the same step as the env made with that value
        fixed = GymnaxEnv(env_id, **{name: value})
        _, expected = fixed.step_with(jax.random.PRNGKey(1), inner, action, fixed.params)
        np.testing.assert_allclose(outcome(drawn), outcome(expected), rtol=1e-6, err_msg=name)


def test_cartpole_derived_fields_follow_each_draw():
    env = GymnaxEnv("CartPole-v1")
    wrapped = sim2real.DomainRandomization(env, {"masspole": (0.05, 1.0), "length": (0.2, 2.0)})
    states, _ = jax.vmap(wrapped.reset)(jax.random.split(KEY, 64))
    params = jax.vmap(wrapped.params)(states.values)
    masspole, length = np.asarray(states.values["masspole"]), np.asarray(states.values["length"])
    assert masspole.std() > 0.1 and length.std() > 0.2  # every env its own
    assert (masspole >= 0.05).all() and (masspole <= 1.0).all()
    np.testing.assert_allclose(params.total_mass, env.params.masscart + masspole, rtol=1e-6)
    np.testing.assert_allclose(params.polemass_length, masspole * length, rtol=1e-6)


def test_parameters_are_drawn_again_when_an_episode_ends():
    env = sim2real.DomainRandomization(GymnaxEnv("CartPole-v1"), {"masspole": (0.05, 1.0)})
    step = jax.jit(env.step)
    state, _ = env.reset(KEY)
    draws, dones = [float(state.values["masspole"])], 0
    for t in range(300):
        before = float(state.values["masspole"])
        state, ts = step(jax.random.PRNGKey(t + 1), state, jnp.int32(1))
        after = float(state.values["masspole"])
        if bool(ts.done):
            dones += 1
            draws.append(after)
        else:
            assert after == before  # fixed within an episode
    assert dones >= 5 and len(set(draws)) == len(draws)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_action_delay_delays_by_exactly_k(k):
    # Pendulum's state records the torque it applied (last_u)
    env = sim2real.ActionDelay(GymnaxEnv("Pendulum-v1"), k)
    state, _ = env.reset(KEY)
    chosen = [0.3, -1.1, 1.7, 0.9, -0.4, 1.2, -1.9]
    for t, action in enumerate(chosen):
        state, _ = env.step(jax.random.PRNGKey(t), state, jnp.array([action], jnp.float32))
        applied = float(state.env_state.last_u)
        expected = chosen[t - k] if t >= k else 0.0
        assert applied == pytest.approx(expected), (t, applied, expected)


def test_action_delay_starts_each_episode_with_nothing_pending():
    env = sim2real.ActionDelay(GymnaxEnv("CartPole-v1"), 2)
    state, _ = env.reset(KEY)
    for t in range(500):
        state, ts = env.step(jax.random.PRNGKey(t), state, jnp.int32(1))
        if bool(ts.done):
            np.testing.assert_array_equal(np.asarray(state.pending), [0, 0])
            return
        np.testing.assert_array_equal(np.asarray(state.pending)[-1], 1)
    pytest.fail("no episode ended")


def test_observation_noise_has_its_standard_deviation():
    env = GymnaxEnv("Pendulum-v1")
    noisy = sim2real.ObservationNoise(env, 0.2)
    keys = jax.random.split(KEY, 4000)
    _, seen = jax.vmap(noisy.reset)(keys)
    # the same episodes without noise: the wrapper resets the inner env with its key's first half
    inner_keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
    _, clean = jax.vmap(env.reset)(inner_keys)
    error = np.asarray(seen.obs - clean.obs)
    assert abs(error.mean()) < 0.02
    assert error.std() == pytest.approx(0.2, rel=0.05)
    np.testing.assert_array_equal(np.asarray(seen.final_obs), np.asarray(seen.obs))


def test_action_noise_discrete_replaces_with_its_probability_and_box_clips():
    discrete = sim2real.ActionNoise(GymnaxEnv("CartPole-v1"), 0.5)
    actions = jax.vmap(lambda k: discrete.perturb(k, jnp.int32(0)))(jax.random.split(KEY, 20000))
    # replaced with probability 0.5 by one of 2 actions: the other one a quarter of the time
    assert np.asarray(actions).mean() == pytest.approx(0.25, abs=0.02)
    box = sim2real.ActionNoise(GymnaxEnv("Pendulum-v1"), 1.0)
    moved = jax.vmap(lambda k: box.perturb(k, jnp.array([1.9])))(jax.random.split(KEY, 20000))
    moved = np.asarray(moved)
    assert moved.max() <= 2.0 and moved.min() >= -2.0 and (moved == 2.0).mean() > 0.3


def test_parse_ranges_reads_text_json_and_files(tmp_path):
    assert sim2real.parse_ranges("m=0.5:2.0,l=0.7:1.3") == {"m": (0.5, 2.0), "l": (0.7, 1.3)}
    assert sim2real.parse_ranges('{"m": [0.5, 2]}') == {"m": (0.5, 2.0)}
    path = tmp_path / "ranges.json"
    path.write_text('{"g": [9, 11]}')
    assert sim2real.parse_ranges(str(path)) == {"g": (9.0, 11.0)}
    for bad in ("m=1", "m=a:b", "m=2:1", "m=1:2,m=1:3", "=1:2", "m=nan:1"):
        with pytest.raises(ConfigError):
            sim2real.parse_ranges(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--randomize", "total_mass=1:2"], "follows from masscart and masspole"),
        (["--randomize", "mas=1:2"], "did you mean"),
        (["--randomize", "max_steps_in_episode=1:2"], "is not a real number"),
        (["--action-delay", "-1"], "action_delay must be"),
        (["--action-noise", "2"], "at most 1"),
    ],
)
def test_bad_settings_are_one_sentence(args, message):
    result = run_cli("train", "ppo", "--env", "CartPole-v1", *args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_host_env_refuses_randomization_without_a_mujoco_model():
    result = run_cli("train", "ppo", "--env", "LunarLander-v3", "--randomize", "mass=1:2")
    assert result.returncode != 0 and "is neither" in result.stderr
    assert "Traceback" not in result.stderr


RANDOMIZED = ["train", "ppo", "--env", "CartPole-v1", "--seeds", "2", "--evals", "0",
              "--num-envs", "4", "--num-steps", "32", "--quiet",
              "--randomize", "masspole=0.05:0.5,length=0.3:1.0", "--action-delay", "1",
              "--obs-noise", "0.01"]  # fmt: skip


@pytest.mark.slow
def test_robustness_map_of_a_randomized_run(tmp_path: Path):
    out = tmp_path / "run"
    trained = run_cli(*RANDOMIZED, "--steps", "4096", "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    recorded = json.loads((out / "config.json").read_text())["settings"]
    assert json.loads(recorded["randomize"]) == {"length": [0.3, 1.0], "masspole": [0.05, 0.5]}
    from bellman.experiment.robustness import robustness_map

    # a one-cell grid at the nominal parameters is the nominal evaluation itself
    one = robustness_map(out, "masspole=0.1:0.1:1,length=0.5:0.5:1", episodes=4, write=False)
    assert one["return_mean"][0][0] == pytest.approx(one["nominal_return"])
    assert one["held_fraction"] == 1.0
    shown = run_cli(
        "eval", str(out), "--params-grid", "masspole=0.05:1.0:3,length=0.1:2.0:2",
        "--episodes", "4", "--json",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    mean = np.asarray(result["return_mean"])
    assert mean.shape == (3, 2) and np.asarray(result["return_per_seed"]).shape == (3, 2, 2)
    assert len(np.unique(mean)) > 1  # the cells are different simulators
    held = mean >= result["nominal_return"] - 0.1 * abs(result["nominal_return"])
    assert result["held"] == held.tolist()
    assert all(Path(p).exists() for p in result["files"])
    bad = run_cli("eval", str(out), "--params-grid", "masspole=1:0:3")
    assert bad.returncode != 0 and "low <= high" in bad.stderr


@pytest.mark.slow
def test_randomized_run_resumes_exactly(tmp_path: Path):
    # the env state carries each env's drawn parameters and pending actions
    args = [*RANDOMIZED, "--steps", "65536", "--checkpoint-every", "2048"]
    assert_resume_is_exact(args, "ppo", tmp_path, 64, 512)  # updates of 128 steps


# ----- warm starts and system identification -----


@pytest.mark.slow
def test_init_from_starts_from_the_runs_state(tmp_path: Path):
    from bellman.experiment import checkpoint as ckpt

    source, target = tmp_path / "source", tmp_path / "target"
    args = ["train", "ppo", "--env", "CartPole-v1", "--seeds", "2", "--evals", "0", "--quiet"]
    assert run_cli(*args, "--steps", "4096", "--out", str(source)).returncode == 0
    # a learning rate too small to move float32 weights: the networks stay the source's
    started = run_cli(
        *args, "--steps", "2048", "--env-params", "length=1.0", "--init-from", str(source),
        "--learning-rate", "1e-30", "--out", str(target),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    newest = lambda run: ckpt.read_arrays(ckpt.list_checkpoints(run / "checkpoints")[-1][1])
    before, after = newest(source)["algo"], newest(target)["algo"]
    params = 12  # the actor's and the critic's three dense layers, kernels and biases
    for a, b in zip(before[:params], after[:params], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    fresh = tmp_path / "fresh"
    assert run_cli(*args, "--steps", "2048", "--out", str(fresh)).returncode == 0
    assert not np.allclose(newest(fresh)["algo"][0], before[0])
    recorded = json.loads((target / "config.json").read_text())["settings"]["init_from"]
    assert recorded == str(source.resolve())
    for extra, message in [
        (["--seeds", "3"], "has 2 seed(s)"),
        (["--hidden-sizes", "32"], "other shapes"),
    ]:
        refused = run_cli(*args, *extra, "--init-from", str(source))
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    other = run_cli("train", "dqn", "--env", "CartPole-v1", "--seeds", "2", "--init-from",
                    str(source))  # fmt: skip
    assert other.returncode != 0 and "is a ppo run" in other.stderr


class LinearParams:
    """x' = a x + b u: the parameters, as a gymnax EnvParams behaves."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def replace(self, **changes):
        return LinearParams(changes.get("a", self.a), changes.get("b", self.b))


class LinearSystem:
    """A linear system with the part of GymnaxEnv's interface that the fit uses."""

    class spec:
        id = "linear"

    params = LinearParams(1.0, 1.0)

    def step_with(self, key, state, action, params):
        from bellman.envs.core import TimeStep

        x = params.a * state + params.b * action
        false = jnp.zeros((), bool)
        return x, TimeStep(x, jnp.zeros(()), false, false, x, {})


def test_identification_recovers_a_linear_systems_parameters():
    from bellman.experiment.identify import fit

    a, b = 0.85, 0.4
    k1, k2 = jax.random.split(KEY)
    states = jax.random.normal(k1, (50, 4, 2))
    actions = jax.random.normal(k2, (50, 4, 2))
    data = {
        "state": states,
        "action": actions,
        "next_obs": a * states + b * actions,
        "valid": jnp.ones((50, 4), bool),
    }
    found, losses = fit(LinearSystem(), data, ["a", "b"], 3000, 0.02)
    assert found["a"] == pytest.approx(a, rel=1e-3) and found["b"] == pytest.approx(b, rel=1e-3)
    assert losses[-1] < 1e-6 < losses[0]


@pytest.mark.slow
def test_identify_recovers_pendulum_mass_and_length(tmp_path: Path):
    run = tmp_path / "run"
    trained = run_cli("train", "ppo", "--env", "Pendulum-v1", "--steps", "2048", "--evals", "0",
                      "--quiet", "--out", str(run))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    found = run_cli("identify", str(run), "--real", "m=1.3,l=0.8", "--params", "m,l", "--json")
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    assert result["transitions"] == 10 * 200
    assert result["estimate"]["m"] == pytest.approx(1.3, rel=0.01)
    assert result["estimate"]["l"] == pytest.approx(0.8, rel=0.01)
    assert Path(result["file"]).exists()
    for args, message in [
        (["--params", "masspole"], "no parameter"),
        (["--params", "max_steps_in_episode"], "not a real number"),
        (["--episodes", "0", "--params", "m"], "episodes must be"),
    ]:
        refused = run_cli("identify", str(run), "--real", "m=1.3", *args)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


# ----- MuJoCo on the host -----


@pytest.mark.parametrize("name", ["mass", "friction", "damping", "gain"])
def test_each_mujoco_quantity_changes_the_dynamics(name):
    pytest.importorskip("mujoco")
    import gymnasium as gym

    from bellman.envs.sim2real_host import FIELDS, MujocoRandomization

    def rollout(env):
        env.reset(seed=3)
        action = np.full(env.action_space.shape, 0.8, np.float32)
        return np.concatenate([env.step(action)[0] for _ in range(20)])

    nominal = rollout(gym.make("HalfCheetah-v5"))
    env = MujocoRandomization(gym.make("HalfCheetah-v5"), {name: (2.5, 3.0)})
    changed = rollout(env)
    assert not np.allclose(changed, nominal, atol=1e-4), name
    model, field = env.unwrapped.model, FIELDS[name][0]
    drawn = env.factors[name]
    assert (drawn >= 2.5).all() and (drawn <= 3.0).all() and drawn.std() > 0
    current = getattr(model, field)
    current = current[:, 0] if current.ndim > 1 else current
    base = env.nominal[field]
    base = base[:, 0] if base.ndim > 1 else base
    np.testing.assert_allclose(current, base * drawn)
    # the same seed, the same draw; another episode, another
    env.reset(seed=3)
    np.testing.assert_array_equal(env.factors[name], drawn)
    env.reset()
    assert not np.array_equal(env.factors[name], drawn)


@pytest.mark.slow
def test_host_sim2real_hostd_run_and_its_map(tmp_path: Path):
    pytest.importorskip("mujoco")
    out = tmp_path / "run"
    trained = run_cli(
        "train", "sac", "--env", "HalfCheetah-v5", "--backend", "gymnasium", "--steps", "300",
        "--learning-starts", "200", "--evals", "0", "--eval-episodes", "1", "--quiet",
        "--randomize", "mass=0.5:1.5,friction=0.5:1.5", "--out", str(out),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    shown = run_cli(
        "eval", str(out), "--params-grid", "mass=0.5:1.5:2,friction=1:1:1", "--episodes", "1",
        "--json",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert np.asarray(result["return_mean"]).shape == (2, 1)
    assert result["nominal"] == {"mass": 1.0, "friction": 1.0}
    # system identification of the model's factors by CMA-ES, replaying MuJoCo states
    found = run_cli(
        "identify", str(out), "--real", "mass=1.3,friction=0.7", "--params", "mass,friction",
        "--episodes", "1", "--iterations", "15", "--noise", "0.5", "--json",
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    identified = json.loads(found.stdout)
    assert identified["method"] == "cma-es" and identified["transitions"] == 1000
    assert identified["estimate"]["mass"] == pytest.approx(1.3, rel=0.03)
    assert identified["estimate"]["friction"] == pytest.approx(0.7, rel=0.03)
    refused = run_cli("train", "sac", "--env", "HalfCheetah-v5", "--backend", "gymnasium",
                      "--randomize", "length=1:2")  # fmt: skip
    assert refused.returncode != 0 and "mass, friction, damping, gain" in refused.stderr


def test_host_noise_and_delay():
    import gymnasium as gym

    from bellman.envs.sim2real_host import HostNoise

    env = HostNoise(gym.make("Pendulum-v1"), 0.0, 0.0, 2)
    env.reset(seed=0)
    chosen = [0.5, -1.0, 1.5, 0.25]
    applied = []
    for action in chosen:
        env.step(np.array([action], np.float32))
        applied.append(float(env.unwrapped.last_u))
    assert applied == pytest.approx([0.0, 0.0, 0.5, -1.0])
    noisy = HostNoise(gym.make("Pendulum-v1"), 0.1, 0.0, 0)
    clean = gym.make("Pendulum-v1")
    seen, _ = noisy.reset(seed=1)
    truth, _ = clean.reset(seed=1)
    assert 0 < np.abs(seen - truth).max() < 0.5
    # a seeded reset repeats the noise
    again, _ = noisy.reset(seed=1)
    np.testing.assert_array_equal(again, seen)


def test_host_noise_through_the_command_line(tmp_path: Path):
    out = tmp_path / "run"
    trained = run_cli(
        "train", "ppo", "--env", "CartPole-v1", "--backend", "gymnasium", "--steps", "512",
        "--num-envs", "2", "--num-steps", "64", "--evals", "0", "--eval-episodes", "2",
        "--quiet", "--obs-noise", "0.05", "--action-noise", "0.1", "--action-delay", "1",
        "--out", str(out),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["obs_noise"], settings["action_noise"], settings["action_delay"]) == (
        0.05, 0.1, 1,
    )  # fmt: skip
