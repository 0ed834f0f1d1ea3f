"""Users' own JAX envs on the compiled backend, gymnax parameters, gymnasium keyword arguments and
jumanji's envs: each trains (and learns, where the run is short enough to tell), each is recorded
so that a resumed or evaluated run makes the same env, and each mistake is one sentence.

The user's env is `tests.jax_envs.Signpost`, the worked example of docs/environments.md: an
agent that reads the signpost earns 1 per episode, one that ignores it 0 on average.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman.envs import options, protocol, registry
from bellman.errors import ConfigError, EnvError, UnknownNameError
from tests import jax_envs
from tests.conftest import ROOT, run_cli

PROGRESS = re.compile(r"^\S+ \S+ x\d+: (compiling\.\.\.|evaluating\.\.\.|step )")


def error_line(result: Any) -> str:
    """The one `bellman: error:` line of a refused command (exit code 2), progress aside."""
    lines = [line for line in result.stderr.splitlines() if not PROGRESS.match(line)]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("bellman: error: "), result.stderr
    return lines[0]


def quiet(**settings: Any) -> dict[str, Any]:
    return {"progress": False, "evals": 0, **settings}


# ----- a user's JAX env trains and learns -----

DQN_QUICK = {
    "learning_starts": 1000, "buffer_size": 5000, "batch_size": 64, "learning_rate": 1e-3,
    "exploration_fraction": 0.3, "train_frequency": 4,
}  # fmt: skip


@pytest.mark.parametrize(
    ("algo", "settings", "cache_key"),
    [("ppo", {"steps": 20_000}, True), ("dqn", {"steps": 10_000, **DQN_QUICK}, False)],
    ids=["ppo", "dqn-without-cache-key"],
)
def test_a_user_env_object_learns_with_two_seeds(
    algo: str, settings: dict[str, Any], cache_key: bool, tmp_path: Path
) -> None:
    env = jax_envs.Signpost()
    if not cache_key:
        env.cache_key = None  # type: ignore[assignment]  # compiled each run, never cached
    run = bellman.train(algo, env=env, seeds=2, out=tmp_path / "run", **quiet(**settings))
    returns = np.asarray(run.summary["final_return_per_seed"])
    # ignoring the signpost earns 0 on average over the 20 greedy episodes; reading it earns 1
    assert returns.min() >= 0.8, returns
    assert run.summary["backend"] == "compiled"
    assert run.summary["env"] == "object:tests.jax_envs.Signpost"
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["env"] == record["settings"]["env"] == "object:tests.jax_envs.Signpost"


def test_module_attr_names_an_object_a_function_or_a_class() -> None:
    for attr in ("SIGNPOST", "make_signpost", "Signpost"):
        resolved = registry.resolve(f"tests.jax_envs:{attr}")
        assert resolved.backend == "compiled" and resolved.spec.id == "Signpost-v0"
        assert resolved.id == f"tests.jax_envs:{attr}" and resolved.make_gym is None
    made = registry.resolve("tests.jax_envs:make_signpost", env_kwargs="length=7,max_steps=20")
    assert made.env_kwargs == '{"length": 7, "max_steps": 20}'
    assert made.spec.max_episode_steps == 20
    assert made.jax_env is not None and made.jax_env.cache_key.startswith("signpost-v0 length=7")
    # a gymnasium.Env class keeps going to the gymnasium backend
    assert registry.resolve("tests.user_envs:Corridor").backend == "gymnasium"
    with pytest.raises(
        ConfigError, match=r"env_kwargs cannot be passed to 'tests\.jax_envs:SIGNPOST'"
    ):
        registry.resolve("tests.jax_envs:SIGNPOST", env_kwargs="length=7")
    with pytest.raises(
        EnvError, match=r"is a JAX env, not a gymnasium\.Env: it trains on the compiled"
    ):
        registry.resolve("tests.jax_envs:make_signpost", backend="gymnasium")
    with pytest.raises(EnvError, match=r"is a JAX env, not a gymnasium\.Env"):
        registry.resolve("tests.jax_envs:SIGNPOST", backend="gymnasium")
    with pytest.raises(ConfigError, match="env must be of type str, not 123"):
        registry.env_label(123)


def test_a_module_attr_jax_run_is_recorded_and_opened_only_with_trust_env(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--env", "tests.jax_envs:make_signpost", "--env-kwargs", "length=7", "--seeds", "2"]
    result = run_cli("train", "ppo", *args, "--steps", "3000", "--evals", "0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "config.json").read_text())
    assert record["backend"] == "compiled"
    assert record["settings"]["env_kwargs"] == '{"length": 7}'
    refused = error_line(run_cli("eval", str(out), "--json"))
    assert "pass --trust-env" in refused and "tests.jax_envs" in refused
    evaluated = run_cli("eval", str(out), "--json", "--trust-env")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.splitlines()[-1])["backend"] == "compiled"


def test_an_object_run_is_resumed_and_loaded_with_the_object_again(tmp_path: Path) -> None:
    out = tmp_path / "run"
    bellman.train("ppo", env=jax_envs.Signpost(), steps=3000, out=out, **quiet())
    with pytest.raises(EnvError, match=r"trained on an env object .*bellman.resume\(run_dir, env="):
        bellman.load(out)
    with pytest.raises(EnvError, match=r"not on 'object:tests\.jax_envs\.WrongObsShape'"):
        bellman.load(out, env=jax_envs.WrongObsShape())
    with pytest.raises(ConfigError, match="env= takes the env object of a run trained on one"):
        bellman.load(out, env="CartPole-v1")
    with pytest.raises(EnvError, match="trained on an env object"):
        bellman.resume(out, steps=6000, progress=False)
    policy = bellman.load(out, env=jax_envs.Signpost())
    assert policy.spec == jax_envs.Signpost().spec
    run = bellman.resume(out, env=jax_envs.Signpost(), steps=6000, progress=False)
    assert run.summary["resumed"] and run.summary["steps"] >= 6000
    # the command line cannot pass an object: one sentence saying how
    line = error_line(run_cli("eval", str(out)))
    assert "object:tests.jax_envs.Signpost" in line and "bellman.load(run_dir, env=...)" in line
    trained = tmp_path / "cartpole"
    bellman.train("ppo", env="CartPole-v1", steps=512, out=trained, **quiet())
    with pytest.raises(ConfigError, match="env= takes the env object"):
        bellman.load(trained, env=jax_envs.Signpost())


# ----- protocol errors: one sentence each, before anything is written -----

MALFORMED = [
    ("NoReset", "has no reset: a JAX env needs spec"),
    ("NoSpec", "has no spec: a JAX env needs spec"),
    ("DictSpec", "has a spec of type dict, not bellman.envs.EnvSpec"),
    ("WrongObsShape", r"reset\(key\) returned obs of float32 \(3,\).*obs_shape \(2,\)"),
    ("WrongObsDtype", r"returned obs of int32 \(2,\).*obs_dtype 'float32'"),
    ("WrongStepSignature", r"has step\(state.*but bellman calls step\(key, state, action\)"),
    ("WrongStepReturn", r"step\(key, state, action\) returned a tuple of 5 items, not \(state"),
    ("IntReward", r"a reward of int32 \(\), not a float32 scalar"),
    ("StateChanges", r"returned a state of type tuple where reset\(\) gave a"),
    ("PythonBranch", r"raised TracerBoolConversionError in step\(\) at .*jax_envs.py:\d+"),
]


@pytest.mark.parametrize(("name", "fragment"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_env_object_is_one_sentence(name: str, fragment: str, tmp_path: Path) -> None:
    env = getattr(jax_envs, name)()
    with pytest.raises(EnvError, match=fragment) as raised:
        bellman.train("ppo", env=env, steps=1000, out=tmp_path / "run", progress=False)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


CLI_MALFORMED = ["NoReset", "NoSpec", "WrongObsShape", "WrongObsDtype", "WrongStepSignature"]


@pytest.mark.parametrize("name", CLI_MALFORMED)
def test_a_malformed_module_attr_env_is_one_line_on_the_command_line(
    name: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = run_cli("train", "ppo", "--env", f"tests.jax_envs:{name}", "--out", str(out))
    fragment = dict(MALFORMED)[name]
    assert re.search(fragment, error_line(result)), result.stderr
    assert f"environment 'tests.jax_envs:{name}'" in result.stderr
    assert not out.exists()


def test_a_class_or_a_gymnasium_env_object_is_refused_with_what_to_pass() -> None:
    with pytest.raises(
        EnvError, match=r"is a class, not an env object: pass an instance, Signpost\(\)"
    ):
        registry.resolve(jax_envs.Signpost)
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    with pytest.raises(
        EnvError, match=r"is a gymnasium\.Env object: bellman creates gymnasium envs"
    ):
        registry.resolve(env)
    env.close()
    with pytest.raises(EnvError, match="how a run records an env object"):
        registry.resolve("object:tests.jax_envs.Signpost")


# ----- gymnax parameters -----


def episode(env: Any, key: jax.Array, action: int, steps: int) -> dict[str, np.ndarray]:
    """`steps` steps of one constant action from the same key: obs, terminated, truncated."""

    def body(carry: Any, step_key: jax.Array) -> Any:
        state, ts = env.step(step_key, carry, jnp.int32(action))
        return state, (ts.final_obs, ts.terminated, ts.truncated)

    state, _ = env.reset(key)
    _, (obs, terminated, truncated) = jax.lax.scan(body, state, jax.random.split(key, steps))
    return {
        "obs": np.asarray(obs),
        "terminated": np.asarray(terminated),
        "truncated": np.asarray(truncated),
    }


def test_gymnax_parameters_change_the_dynamics() -> None:
    key = jax.random.PRNGKey(3)
    default = registry.resolve("CartPole-v1").jax_env
    heavy = registry.resolve("CartPole-v1", env_params="gravity=40").jax_env
    short = registry.resolve("CartPole-v1", env_params="max_steps_in_episode=5").jax_env
    # the same pushes from the same start: under other gravity the pole moves otherwise; pushed
    # with a fifth of the force, the cart tips the pole over later
    plain, strong = episode(default, key, 1, 6), episode(heavy, key, 1, 6)
    assert not np.allclose(plain["obs"], strong["obs"]), "gravity was ignored"
    gentle = registry.resolve("CartPole-v1", env_params="force_mag=2").jax_env
    first_end = lambda e: int(np.argmax(e["terminated"] | e["truncated"]))
    assert first_end(episode(gentle, key, 1, 40)) > first_end(episode(default, key, 1, 40)) + 5
    # a time limit of 5 cuts the episodes the pole would have survived
    cut = episode(short, key, 0, 12)
    assert cut["truncated"].tolist() == [False] * 4 + [True] + [False] * 4 + [True] + [False] * 2
    assert not episode(default, key, 0, 12)["truncated"].any()
    assert short.spec.max_episode_steps == 5


def test_cartpole_derived_parameters_follow_their_sources() -> None:
    env = registry.resolve("CartPole-v1", env_params="masspole=0.5,length=1.0,masscart=2").jax_env
    params = env._params  # type: ignore[union-attr]
    assert params.total_mass == pytest.approx(2.5)
    assert params.polemass_length == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="total_mass follows from masscart and masspole"):
        registry.resolve("CartPole-v1", env_params="total_mass=3")


def test_env_params_forms_are_recorded_alike_and_name_the_programs(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text('{"gravity": 20, "max_steps_in_episode": 200}')
    forms = [
        "gravity=20,max_steps_in_episode=200",
        '{"max_steps_in_episode": 200, "gravity": 20.0}',
        str(path),
    ]
    resolved = [registry.resolve("CartPole-v1", env_params=form) for form in forms]
    assert {r.env_params for r in resolved} == {'{"gravity": 20.0, "max_steps_in_episode": 200}'}
    keys = {r.jax_env.cache_key for r in resolved}  # type: ignore[union-attr]
    assert len(keys) == 1
    assert keys != {registry.resolve("CartPole-v1").jax_env.cache_key}  # type: ignore[union-attr]
    assert resolved[0].make_gym is None  # gymnasium's CartPole has the default physics
    torque = registry.resolve("Acrobot-v1", env_params="available_torque=[-2, 0, 2]")
    assert torque.env_params == '{"available_torque": [-2.0, 0.0, 2.0]}'


@pytest.mark.parametrize(
    ("env", "params", "error", "fragment"),
    [
        (
            "CartPole-v1",
            "gravty=3",
            ConfigError,
            r"CartPole-v1 has no parameter 'gravty' \(did you mean: gravity\?\); its parameters "
            r"are max_steps_in_episode, gravity",
        ),
        (
            "CartPole-v1",
            "gravity=heavy",
            ConfigError,
            "parameter gravity must be of type float, not 'heavy'",
        ),
        (
            "CartPole-v1",
            "max_steps_in_episode=0",
            ConfigError,
            "max_steps_in_episode must be at least 1",
        ),
        ("CartPole-v1", "gravity", ConfigError, "neither name=value,... nor a JSON object"),
        ("CartPole-v1", "{not json", ConfigError, "is not valid JSON"),
        ("Acrobot-v1", "available_torque=[1, 2]", ConfigError, r"must be an array of shape \(3,\)"),
        ("Maze-v0", "gamma=1", ConfigError, "'Maze-v0' has none"),
    ],
)
def test_bad_env_params_are_one_sentence(env: str, params: str, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment) as raised:
        registry.resolve(env, env_params=params)
    assert "\n" not in str(raised.value)


def test_env_params_on_the_command_line_are_recorded_and_reused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--env", "CartPole-v1", "--env-params", "max_steps_in_episode=8", "--steps", "2048"]
    result = run_cli("train", "ppo", *args, "--evals", "0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "config.json").read_text())
    assert record["settings"]["env_params"] == '{"max_steps_in_episode": 8}'
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["final_return_mean"] <= 8  # reward 1 per step, cut after 8 steps
    evaluated = run_cli("eval", str(out), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.splitlines()[-1])["return_mean"] <= 8
    line = error_line(run_cli("train", "ppo", "--env", "CartPole-v1", "--env-params", "gravty=1"))
    assert "has no parameter 'gravty' (did you mean: gravity?); its parameters are" in line


# ----- gymnasium keyword arguments -----


def test_env_kwargs_reach_gymnasium_make_and_a_users_class() -> None:
    made = registry.resolve("CartPole-v1", "gymnasium", env_kwargs="sutton_barto_reward=true")
    assert made.env_kwargs == '{"sutton_barto_reward": true}'
    assert made.make_gym is not None
    env = made.make_gym()
    assert env.unwrapped._sutton_barto_reward is True
    env.close()
    corridor = registry.resolve("tests.user_envs:Corridor", env_kwargs='{"length": 3}')
    assert corridor.backend == "gymnasium" and corridor.make_gym is not None
    env = corridor.make_gym(render_mode="rgb_array")
    assert env.unwrapped.length == 3 and env.unwrapped.render_mode == "rgb_array"
    env.close()
    with pytest.raises(EnvError, match="cannot create environment 'CartPole-v1'"):
        registry.resolve("CartPole-v1", "gymnasium", env_kwargs="no_such_argument=1")
    with pytest.raises(
        ConfigError,
        match=r"runs on the compiled backend \(gymnax\), whose parameters are env_params",
    ):
        registry.resolve("CartPole-v1", env_kwargs="sutton_barto_reward=true")
    with pytest.raises(ConfigError, match="takes name=value pairs"):
        options.parse("a=1,=2", "env_kwargs")


# ----- jumanji -----


def test_jumanji_ids_are_jumanjis() -> None:
    jumanji = pytest.importorskip("jumanji")
    from bellman.envs.jumanji_env import JUMANJI_IDS

    assert set(JUMANJI_IDS) == set(jumanji.registered_environments())
    assert registry.user_module("jumanji:Snake-v1") is None  # no user code: no --trust-env


def test_jumanji_episode_ends_are_terminated_or_truncated() -> None:
    pytest.importorskip("jumanji")
    from jumanji.environments.routing.maze.generator import ToyGenerator

    from bellman.envs.jumanji_env import JumanjiEnv

    env = JumanjiEnv("Maze-v0", generator=ToyGenerator(), time_limit=6)
    assert env.cache_key is None  # a generator object has no text that names it
    protocol.check_jax_env("toy maze", env)
    key = jax.random.PRNGKey(0)
    # bumping into the wall above the start until the time limit: truncated, not terminated
    stuck = episode(env, key, 0, 7)
    assert stuck["truncated"].tolist() == [False] * 5 + [True, False]
    assert not stuck["terminated"].any()
    # the way through the toy maze to its target: terminated, reward 1, then a new episode
    maze = JumanjiEnv("Maze-v0", generator=ToyGenerator())
    path = [2, 2, 2, 1, 1, 0, 0, 0, 1, 1]
    state, ts = maze.reset(key)
    start = np.asarray(ts.obs)
    for action in path:
        state, ts = maze.step(key, state, jnp.int32(action))
    assert bool(ts.terminated) and not bool(ts.truncated) and float(ts.reward) == 1.0
    assert np.array_equal(np.asarray(ts.obs), start)  # reset to the start
    assert not np.array_equal(np.asarray(ts.final_obs), start)  # the target reached
    assert int(state.steps) == 0


def test_jumanji_snake_learns_on_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("jumanji")
    out = tmp_path / "run"
    small = ["--env-kwargs", "num_rows=5,num_cols=5,time_limit=50", "--seeds", "2"]
    result = run_cli(
        "train", "ppo", "--env", "jumanji:Snake-v1", *small, "--steps", "100000", "--evals", "0",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    returns = np.asarray(summary["final_return_per_seed"])
    # fruit eaten per greedy episode: random play eats about 0.15 before hitting a wall
    assert returns.mean() >= 0.8 and returns.min() >= 0.5, returns
    record = json.loads((out / "config.json").read_text())
    assert record["env"] == "jumanji:Snake-v1" and record["backend"] == "compiled"
    evaluated = run_cli("eval", str(out), "--json", "--episodes", "5")  # no --trust-env needed
    assert evaluated.returncode == 0, evaluated.stderr


def test_jumanji_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jumanji", None)
    with pytest.raises(
        EnvError, match=r"needs jumanji, an optional dependency: pip install 'bellman\[jumanji\]'"
    ):
        registry.resolve("jumanji:Snake-v1")
    with pytest.raises(UnknownNameError, match="did you mean: jumanji:Snake-v1"):
        registry.resolve("jumanji:Snak-v1")


def test_jumanji_refuses_what_bellman_cannot_train(tmp_path: Path) -> None:
    pytest.importorskip("jumanji")
    with pytest.raises(EnvError, match="no gymnasium implementation"):
        registry.resolve("jumanji:Snake-v1", backend="gymnasium")
    with pytest.raises(EnvError, match="cannot create environment 'jumanji:Snake-v1'"):
        registry.resolve("jumanji:Snake-v1", env_kwargs="no_such_argument=1")
    with pytest.raises(EnvError, match="MultiDiscreteArray"):
        bellman.train("ppo", env="jumanji:RubiksCube-v0", out=tmp_path / "run", progress=False)


# ----- the docs show the example the tests train -----


def test_the_docs_show_the_worked_example_as_it_is() -> None:
    source = (ROOT / "tests" / "jax_envs.py").read_text()
    example = source.split("# --- the worked example: begin ---\n")[1].split(
        "# --- the worked example: end ---"
    )[0]
    page = (ROOT / "docs" / "environments.md").read_text()
    assert example.strip() in page
