"""The algorithm contracts (`bellman.contracts`): every registered algorithm satisfies its family's
protocol and declares its capabilities; no runner or driver probes an algorithm with getattr or
hasattr; the replay loop's settings are declared once with each algorithm's defaults; the
presets are data files, checked when read."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bellman import algos
from bellman import config as cfg
from bellman.algos import ddpg, dp, dqn, pets, ppo, sac
from bellman.contracts import (
    PROTOCOLS,
    Algorithm,
    EvaluationMemory,
    ExplorationNoise,
    OfflineLoop,
    PlanningAlgorithm,
    ReplayLoop,
)
from bellman.envs import registry
from bellman.errors import ConfigError
from bellman.presets import Presets, load, parse
from bellman.runners.evaluation import evaluate_gymnasium, evaluate_jax

ROOT = Path(__file__).resolve().parents[1]


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    """The methods a protocol names (its own and inherited), with their signatures."""
    methods = {}
    for klass in reversed(protocol.__mro__):
        for name, member in vars(klass).items():
            if inspect.isfunction(member) and not name.startswith("_"):
                methods[name] = inspect.signature(member)
    return methods


def check_module(module: object, protocol: type) -> None:
    assert isinstance(module, protocol), f"{module} lacks a member of {protocol.__name__}"
    for name, signature in protocol_methods(protocol).items():
        expected = [p for p in signature.parameters if p != "self"]
        got = list(inspect.signature(getattr(module, name)).parameters)
        assert got == expected, f"{module.__name__}.{name}{tuple(got)} is not {tuple(expected)}"


@pytest.mark.parametrize("name", list(algos.ALGOS))
def test_every_registered_algorithm_satisfies_its_familys_protocol(name: str) -> None:
    info = algos.get(name)
    check_module(info.module, PROTOCOLS[info.family])
    module = info.module
    # the declared capabilities have the declared kinds
    if info.family == "control":  # a controller: no policy of observations, no capabilities
        assert not hasattr(module, "greedy")
    else:
        assert module.evaluation_action is None or callable(module.evaluation_action)
        memory = module.evaluation_memory
        assert memory is None or isinstance(memory, EvaluationMemory)
        assert memory is None or module.evaluation_action is None  # one reported policy
    if info.family == "control":
        assert callable(module.reset)
    elif info.family == "off_policy":
        assert issubclass(module.Config, ReplayLoop)
        assert module.NOISE is None or isinstance(module.NOISE, ExplorationNoise)
        assert module.epsilon is None or callable(module.epsilon)
    elif info.family == "self_play":
        assert {"obs", "legal", "policy", "value"} <= set(module.Batch.__dataclass_fields__)
    elif info.family == "unroll":
        fields = {"obs", "actions", "rewards", "values", "policies", "value_mask", "policy_mask"}
        assert fields <= set(module.Unroll.__dataclass_fields__)
    elif info.family == "evolution":
        assert module.Config().num_steps == 0  # the episode's length follows from the env
    elif info.family == "offline":
        assert issubclass(module.Config, OfflineLoop)
        assert module.Config().num_envs == module.Config().num_steps == 1  # an update a step
    elif info.family == "dagger":
        assert module.Config().num_envs * module.Config().num_steps >= 1  # a round's states
    else:
        assert isinstance(module.EPISODIC, bool)
    # and so do the registry entry's
    assert (info.values_and_policy is not None) == (info.family == "tabular")
    assert (info.glimpse_paths is not None) == (name == "ram")
    for hook in (info.preset_for, info.fit_to_env, info.values_and_policy, info.glimpse_paths):
        assert hook is None or callable(hook)
    info.make_config().validate()


def test_the_families_and_their_declared_capabilities() -> None:
    assert {n for n, i in algos.ALGOS.items() if i.family == "off_policy"} == {
        "dqn",
        "ddpg",
        "td3",
        "sac",
        "pets",
        "mbpo",
    }
    assert {n for n, i in algos.ALGOS.items() if i.family == "self_play"} == {"alphazero"}
    assert {n for n, i in algos.ALGOS.items() if i.family == "unroll"} == {"muzero"}
    assert {n for n, i in algos.ALGOS.items() if i.family == "control"} == {"mpc"}
    assert {n for n, i in algos.ALGOS.items() if i.family == "evolution"} == {"es"}
    assert {n for n, i in algos.ALGOS.items() if i.family == "offline"} == {
        "bc",
        "td3bc",
        "cql",
        "iql",
        "ram",
    }
    assert {n for n, i in algos.ALGOS.items() if i.family == "dagger"} == {"dagger"}
    assert {n for n, i in algos.ALGOS.items() if i.family == "adversarial"} == {"gail"}
    on_policy = [i for i in algos.ALGOS.values() if i.family in ("on_policy", "tabular")]
    assert {i.name for i in on_policy if i.module.EPISODIC} == {"reinforce"}
    assert ddpg.NOISE is not None and dqn.NOISE is None and sac.NOISE is None
    assert pets.NOISE is not None and pets.evaluation_memory is not None
    assert [i.name for i in algos.ALGOS.values() if i.family != "control"
            if i.module.evaluation_memory is not None] == ["pets"]  # fmt: skip
    assert dqn.epsilon is not None and ddpg.epsilon is None and sac.epsilon is None
    assert algos.get("reinforce").fit_to_env is not None
    assert algos.get("es").fit_to_env is not None
    assert algos.get("ppo").fit_to_env is None


def test_a_module_missing_a_member_does_not_satisfy_the_protocol() -> None:
    class Partial:
        __name__ = "partial"
        Config = ppo.PPOConfig
        DEFAULT_STEPS = 1
        check_env = init = greedy = act = learn = staticmethod(lambda *a: None)
        evaluation_action = evaluation_memory = None

    assert isinstance(Partial(), Algorithm)
    assert not isinstance(Partial(), PROTOCOLS["on_policy"])  # no EPISODIC declared


class Alternating:
    """A policy that keeps a state per episode: it counts the episode's steps and pushes
    CartPole's cart left on even steps, right on odd ones. With its count carried from step to
    step an episode lasts over 20 steps (21 to 72 over the first 40 gymnasium seeds); with the
    count lost at each step it always pushes left, and the pole falls within 11."""

    __name__ = "alternating"
    evaluation_action = None
    evaluation_memory = EvaluationMemory(
        init=lambda config, spec, num_envs: jnp.zeros(num_envs, jnp.int32),
        act=lambda config, spec, state, obs, key, count: (count % 2, count + 1),
    )


def test_both_evaluators_carry_a_policys_memory_from_step_to_step() -> None:
    cartpole = registry.resolve("CartPole-v1")
    algo: Any = Alternating()
    assert cartpole.jax_env is not None and cartpole.make_gym is not None
    _, lengths = evaluate_jax(algo, None, cartpole.jax_env, None, jax.random.PRNGKey(0), 16)
    assert np.asarray(lengths).min() > 15, lengths
    seeds = jnp.zeros(2)  # the evaluated states, one per seed (the policy reads none)
    _, lengths = evaluate_gymnasium(
        algo, None, cartpole.spec, "CartPole-v1", cartpole.make_gym, seeds, 8, seed=0
    )
    assert lengths.shape == (2, 8) and lengths.min() > 15, lengths


def test_planning_satisfies_its_protocol() -> None:
    check_module(dp, PlanningAlgorithm)


# ----- no probing -----

PROBE = re.compile(
    r"\b(?:getattr|hasattr)\(\s*(?:self\.|trained\.|saved\.|run\.)?"
    r"(?:algo|algo_config|module|info|config)\b"
)
"""getattr or hasattr on an algorithm, its module, its registry entry or its config."""


def test_no_runner_or_driver_probes_an_algorithm() -> None:
    probes = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("bellman/runners", "bellman/experiment")
        for path in sorted((ROOT / folder).glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PROBE.search(line)
    ]
    assert probes == []


def test_the_probe_pattern_catches_the_old_probes() -> None:
    for line in (
        'schedule = getattr(algo, "epsilon", None)',
        'if hasattr(info.module, "fit_to_env"):',
        'if not hasattr(module, "values_and_policy") or env is None:',
        'episodic = getattr(self.algo, "EPISODIC", False)',
        'minimize = getattr(self.config, "objective", "reward") == "cost"',
    ):
        assert PROBE.search(line), line
    assert not PROBE.search('env_key = getattr(self.env, "cache_key", None)')


# ----- the replay loop's settings -----

LOOP = [f.name for f in dataclasses.fields(ReplayLoop)]

LOOP_DEFAULTS = {
    "dqn": {
        "num_envs": 10, "buffer_size": 10_000, "batch_size": 128, "gamma": 0.99,
        "learning_starts": 10_000, "train_frequency": 10, "gradient_steps": 4, "n_step": 1,
        "prioritized": False, "priority_alpha": 0.6, "priority_beta": 0.4, "clip_rewards": 0.0,
    },
    "ddpg": {
        "num_envs": 1, "buffer_size": 1_000_000, "batch_size": 256, "gamma": 0.99,
        "learning_starts": 1_000, "train_frequency": 1, "gradient_steps": 1, "n_step": 1,
        "prioritized": False, "priority_alpha": 0.6, "priority_beta": 0.4, "clip_rewards": 0.0,
    },
    "sac": {
        "num_envs": 1, "buffer_size": 1_000_000, "batch_size": 256, "gamma": 0.99,
        "learning_starts": 5_000, "train_frequency": 1, "gradient_steps": 1, "n_step": 1,
        "prioritized": False, "priority_alpha": 0.6, "priority_beta": 0.4, "clip_rewards": 0.0,
    },
}  # fmt: skip
"""Each algorithm's loop defaults, as they were before the loop had its own dataclass."""


@pytest.mark.parametrize("name", ["dqn", "ddpg", "td3", "sac"])
def test_the_replay_loop_is_declared_once_with_each_algorithms_defaults(name: str) -> None:
    info = algos.get(name)
    config = info.make_config()
    expected = LOOP_DEFAULTS["ddpg" if name == "td3" else name]
    assert {f: getattr(config, f) for f in LOOP} == expected
    # one help text per field: a subclass changes a default, never the loop's documentation
    loop_docs, docs = cfg.field_docs(ReplayLoop), cfg.field_docs(info.module.Config)
    assert set(loop_docs) == set(LOOP)
    assert {f: docs[f] for f in LOOP} == loop_docs
    assert config.num_steps == config.train_frequency
    assert config.steps_per_update == config.num_envs * config.train_frequency


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_step": 101}, "n_step must be at most 100"),
        ({"buffer_size": 8, "num_envs": 4, "n_step": 3}, "n_step (3) must be at most"),
        ({"num_envs": 0}, "num_envs must be at least 1"),
        ({"gamma": 1.5}, "gamma must"),
        ({"learning_rate": 0.0}, "learning_rate must be"),
        ({"tau": 0.0}, "tau must"),
        ({"hidden_sizes": ()}, "hidden_sizes must be one or more positive widths"),
    ],
)
@pytest.mark.parametrize("config_class", [dqn.DQNConfig, ddpg.DDPGConfig, sac.SACConfig])
def test_the_loop_is_validated_with_the_config(config_class, overrides, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(config_class(), **overrides).validate()


# ----- presets as data -----


@pytest.mark.parametrize("name", [n for n, i in algos.ALGOS.items() if i.presets])
def test_presets_are_shipped_data_of_config_fields(name: str) -> None:
    info = algos.get(name)
    assert isinstance(info.presets, Presets)
    assert (ROOT / "bellman" / "presets" / f"{info.presets.file}.toml").is_file()
    fields = {f.name for f in dataclasses.fields(info.module.Config)}
    for values in info.presets.values():
        assert set(values) <= fields
        dataclasses.replace(info.make_config(), **values).validate()


def test_presets_read_as_they_were_written() -> None:
    assert list(algos.get("dqn").presets) == ["atari", "minatar"]
    atari = algos.get("dqn").presets["atari"]
    assert atari["buffer_size"] == 1_000_000 and atari["network"] == "nature"
    assert type(atari["learning_rate"]) is float and type(atari["num_envs"]) is int
    assert dict(algos.get("td3").presets) == dict(algos.get("ddpg").presets)
    assert dict(algos.get("sac").presets["pendulum"]) == {
        "learning_rate": 1e-3,
        "learning_starts": 1_000,
    }
    assert list(algos.get("ppo").presets) == ["mujoco", "pendulum"]
    assert not algos.get("a2c").presets


def test_the_preset_an_env_gets_stays_code() -> None:
    cartpole = registry.resolve("CartPole-v1").spec
    pendulum = registry.resolve("Pendulum-v1").spec
    assert ppo.preset_for(pendulum) == "pendulum" and ppo.preset_for(cartpole) is None
    assert sac.preset_for(pendulum) == "pendulum" and dqn.preset_for(cartpole) is None
    for info in algos.ALGOS.values():
        if info.preset_for is not None:
            for spec in (cartpole, pendulum):
                assert info.preset_for(spec) in (None, *info.presets)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fast]\nlearning_rat = 1e-3\n", "sets learning_rat, which DQNConfig does not have"),
        ('[fast]\nnum_envs = "many"\n', "preset 'fast': num_envs must be"),
        ("[fast]\nnum_envs = 0\n", "preset 'fast': num_envs must be at least 1"),
        ("fast = 3\n", "preset 'fast' must be a table of config fields"),
        ("[fast\n", "is not valid TOML"),
    ],
)
def test_a_bad_preset_file_is_one_sentence_naming_it(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        parse(text, dqn.DQNConfig, "bellman/presets/x.toml")
    assert str(caught.value).startswith("bellman/presets/x.toml")


def test_presets_are_read_once_and_read_only() -> None:
    presets = load("dqn", dqn.DQNConfig)
    assert load("dqn", dqn.DQNConfig) is presets
    with pytest.raises(TypeError):
        presets["atari"]["num_envs"] = 2  # type: ignore[index]
