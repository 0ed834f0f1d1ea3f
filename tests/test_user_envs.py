"""A user's own gymnasium env that fails ends in one sentence naming the env, the call and the
line, never a traceback: for `bellman train` (on- and off-policy host runners), `bellman eval` and
`bellman.train`. The broken envs live in a module written into a temporary directory, as a
user's own `brokenmod.py` would."""

from __future__ import annotations

import functools
import importlib
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import bellman
from bellman.envs import guard, registry
from bellman.envs.gymnasium_env import GymnasiumVectorEnv
from bellman.errors import BellmanWarning, EnvError
from tests.conftest import run_cli

GOOD = """
import gymnasium as gym
import numpy as np


class Good(gym.Env):
    '''Four numbers in [-1, 1], two actions, episodes of 20 steps.'''

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        return np.full(4, 0.1 * (self.t % 5), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, self.t >= 20, {}
"""

BROKEN = """

class RaisesInInit(Good):
    def __init__(self):
        super().__init__()
        raise RuntimeError("no licence for the simulator")  # line: init


class RaisesInReset(Good):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        raise KeyError("level")  # line: reset


class RaisesInStep(Good):
    def step(self, action):
        if self.t >= 4:  # after a few steps: gymnasium's checker steps once per episode
            raise ValueError("bad action")  # line: step
        return super().step(action)


class WrongShapeReset(Good):
    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return obs[:3], info


class WrongShapeStep(Good):
    def step(self, action):
        obs, *rest = super().step(action)
        return (obs[:3] if self.t >= 4 else obs, *rest)


class OldGymStep(Good):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated or truncated, info


class NanObservation(Good):
    def step(self, action):
        obs, *rest = super().step(action)
        if self.t >= 3:
            obs[2] = np.nan
        return (obs, *rest)


class InfReward(Good):
    def step(self, action):
        obs, reward, *rest = super().step(action)
        return (obs, np.inf if self.t >= 3 else reward, *rest)


class NotASpace(Good):
    def __init__(self):
        super().__init__()
        self.observation_space = (4,)


class UnboundedBox(Good):
    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)


class Float64Observations(Good):
    def _obs(self):
        return np.full(4, 0.1 * (self.t % 5), np.float64)


class Flaky(Good):
    pass
"""

FLAKY_NOW_RAISES = """

class Flaky(Good):
    def step(self, action):
        if self.t >= 3:
            raise OSError("the simulator went away")  # line: flaky
        return super().step(action)
"""

QUICK = ("--steps", "256", "--evals", "0", "--eval-episodes", "1", "--quiet")
PROGRESS = re.compile(r"^\S+ \S+ x\d+: (compiling\.\.\.|evaluating\.\.\.|step )")


def write_module(directory: Path, name: str = "brokenmod", source: str = GOOD + BROKEN) -> Path:
    path = directory / f"{name}.py"
    path.write_text(source)
    shutil.rmtree(directory / "__pycache__", ignore_errors=True)  # no stale bytecode
    return path


def line_of(path: Path, marker: str) -> int:
    """The line of `path` that ends with the comment `# line: MARKER`."""
    lines = path.read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.endswith(f"# line: {marker}"))


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line the CLI printed (besides progress lines), which must be its error."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line and not PROGRESS.match(line)]
    assert len(lines) == 1 and lines[0].startswith("bellman: error: "), result.stderr
    assert "learning rate" not in lines[0] and "diverged" not in lines[0]
    return lines[0]


def train(tmp_path: Path, env: str, algo: str = "ppo", *extra: str) -> str:
    result = run_cli(
        "train", algo, "--env", env, "--out", str(tmp_path / "run"), *QUICK, *extra, cwd=tmp_path
    )
    return error_line(result)


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ("RaisesInInit", ["raised RuntimeError in __init__() at brokenmod.py:{init}", "licence"]),
        ("RaisesInReset", ["raised KeyError in reset() at brokenmod.py:{reset}", "'level'"]),
        ("RaisesInStep", ["raised ValueError in step() at brokenmod.py:{step}: bad action"]),
        ("WrongShapeReset", ["observation of shape (3,) from reset()", "declares (4,)"]),
        ("WrongShapeStep", ["observation of shape (3,) from step()", "declares (4,)"]),
        ("OldGymStep", ["4 values from step()", "old gym API", "terminated, truncated, info)"]),
        ("NanObservation", ["non-finite observation from step() (nan at index 2", "step 3 of"]),
        ("InfReward", ["non-finite reward from step() (inf", "step 3 of its episode"]),
        ("NotASpace", ["has an observation_space of type tuple, not a gymnasium space"]),
    ],
)
def test_a_broken_user_env_is_one_sentence(tmp_path: Path, env: str, fragments: list[str]) -> None:
    path = write_module(tmp_path)
    lines = {m: line_of(path, m) for m in ("init", "reset", "step")}
    line = train(tmp_path, f"brokenmod:{env}")
    assert line.startswith(f"bellman: error: environment 'brokenmod:{env}' ")
    for fragment in fragments:
        assert fragment.format(**lines) in line


def test_the_off_policy_host_runner_names_the_env(tmp_path: Path) -> None:
    path = write_module(tmp_path)
    line = train(tmp_path, "brokenmod:RaisesInStep", "dqn", "--backend", "gymnasium")
    expected = f"raised ValueError in step() at brokenmod.py:{line_of(path, 'step')}: bad action"
    assert line == f"bellman: error: environment 'brokenmod:RaisesInStep' {expected}"


def test_eval_of_a_run_whose_env_now_raises(tmp_path: Path) -> None:
    write_module(tmp_path)
    run_dir = tmp_path / "run"
    result = run_cli("train", "ppo", "--env", "brokenmod:Flaky", "--out", str(run_dir), *QUICK,
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = write_module(tmp_path, source=GOOD + BROKEN + FLAKY_NOW_RAISES)
    trust = ["--trust-env"] if "--trust-env" in run_cli("eval", "--help").stdout else []
    result = run_cli("eval", str(run_dir), "--episodes", "1", *trust, cwd=tmp_path)
    expected = f"raised OSError in step() at brokenmod.py:{line_of(path, 'flaky')}"
    assert f"environment 'brokenmod:Flaky' {expected}: the simulator went away" in error_line(
        result
    )


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`brokenapi.py` importable in this process, with the working directory beside it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "brokenapi", raising=False)
    yield write_module(tmp_path, "brokenapi")
    sys.modules.pop("brokenapi", None)


def test_the_python_api_raises_the_same_sentence(user_module: Path, tmp_path: Path) -> None:
    with pytest.raises(EnvError) as caught:
        bellman.train(
            "ppo", env="brokenapi:RaisesInStep", steps=256, evals=0, eval_episodes=1,
            out=tmp_path / "run", progress=False,
        )  # fmt: skip
    where = f"brokenapi.py:{line_of(user_module, 'step')}"
    expected = f"environment 'brokenapi:RaisesInStep' raised ValueError in step() at {where}"
    assert str(caught.value) == f"{expected}: bad action"
    assert isinstance(caught.value.__cause__, ValueError)  # the traceback, for --debug


def test_a_module_that_fails_on_import_names_its_line(user_module: Path) -> None:
    source = GOOD + "\nsettings = load_settings()  # line: import\n"
    path = write_module(user_module.parent, "failsonimport", source)
    importlib.invalidate_caches()
    with pytest.raises(EnvError) as caught:
        registry.resolve("failsonimport:Good")
    assert str(caught.value) == (
        "environment 'failsonimport:Good' raised NameError while importing module "
        f"'failsonimport' at failsonimport.py:{line_of(path, 'import')}: "
        "name 'load_settings' is not defined"
    )


def test_the_checker_warns_in_a_few_lines(user_module: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.resolve("brokenapi:UnboundedBox")
        registry.resolve("brokenapi:Good")  # a clean env: no warning
    ours = [str(w.message) for w in caught if issubclass(w.category, BellmanWarning)]
    assert 1 <= len(ours) <= guard.MAX_WARNINGS and len(caught) == len(ours)
    assert all(m.startswith("environment 'brokenapi:UnboundedBox': gymnasium's") for m in ours)
    assert any("infinity" in m for m in ours) and not any("\x1b" in m for m in ours)


def test_an_assertion_of_the_checker_is_a_warning_not_a_refusal(user_module: Path) -> None:
    """float64 observations in a float32 Box fail an assertion of gymnasium's checker; bellman
    casts them and trains, so it says so and goes on (as Stable-Baselines3's checker warns)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = registry.resolve("brokenapi:Float64Observations")
    assert resolved.spec.obs_shape == (4,)
    ours = [str(w.message) for w in caught if issubclass(w.category, BellmanWarning)]
    assert any("not within the observation space" in m for m in ours), ours
    assert any("bellman trains the env anyway" in m for m in ours), ours


def test_a_bug_outside_the_env_is_not_blamed_on_it() -> None:
    """An exception whose traceback never enters the env's code propagates unchanged."""
    make = functools.partial(int, "not a number")  # fails in no env's code
    with pytest.raises(ValueError, match="invalid literal"):
        GymnasiumVectorEnv("CartPole-v1", make, 1)  # type: ignore[arg-type]
