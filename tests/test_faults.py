"""Fault injection: damaged checkpoints and run directories, concurrent writers, diverged states
in every algorithm family, full disks and refused permissions, run directories that name code,
planted cache files. Each case asserts the exit code (or the exception), the one sentence, and
that nothing good was lost or overwritten."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bellman
from bellman.cli import main
from bellman.errors import CheckpointError, UntrustedCodeError
from bellman.experiment import checkpoint as ckpt
from bellman.experiment.policy import open_run
from bellman.experiment.rundir import RunDir
from bellman.runners.compiled import CompiledRunner
from tests.conftest import ROOT, run_cli

PROGRESS_PREFIXES = ("compiling...", "evaluating...", "step ")
SMALL = [
    "--seeds", "2", "--steps", "8192", "--num-envs", "4", "--log-every", "512",
    "--checkpoint-every", "1024", "--evals", "0", "--eval-episodes", "2",
]  # fmt: skip
"""16 updates of 512 steps, a checkpoint every 2: a finished run keeps those at 14 and 16."""


def error_lines(stderr: str) -> list[str]:
    """stderr without the plain progress lines of a run."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.split(": ", 1)[-1].startswith(PROGRESS_PREFIXES)
    ]


def assert_one_sentence(code: int, stderr: str, want: int, *fragments: str) -> str:
    assert code == want, stderr
    assert "Traceback" not in stderr
    errors = [line for line in error_lines(stderr) if not line.startswith("bellman: warning:")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith("bellman: error: ")
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command line in this process (no import cost): exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock's (it names the last process that held it)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "run"
    result = run_cli("train", "ppo", "--env", "CartPole-v1", "--out", str(out), *SMALL)
    assert result.returncode == 0, result.stderr
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [14, 16]
    return out


@pytest.fixture
def stopped(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run as a run stopped after its last checkpoint (no summary)."""
    copy = tmp_path / "stopped"
    shutil.copytree(finished, copy)
    (copy / "summary.json").unlink()
    return copy


def checkpoints(run: Path) -> list[Path]:
    return [p for _, p in ckpt.list_checkpoints(run / "checkpoints")]


# ----- checkpoint files -----


def split(path: Path) -> tuple[bytes, dict[str, Any], bytes]:
    """A checkpoint's header bytes (parsed) and payload."""
    data = path.read_bytes()
    at = len(ckpt.MAGIC)
    length = int.from_bytes(data[at : at + 8], "little")
    header = data[at + 40 : at + 40 + length]
    return header, json.loads(header), data[at + 40 + length :]


def reseal(path: Path, header: bytes, payload: bytes) -> None:
    """Write a checkpoint whose checksum matches what it holds: damage made to pass the check."""
    length = len(header).to_bytes(8, "little")
    digest = hashlib.sha256(length + header + payload).digest()
    path.write_bytes(ckpt.MAGIC + length + digest + header + payload)


def damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-50])


def damage_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))


def damage_header_digit(path: Path) -> None:
    """One digit of an array offset changed (the header's checksum was not covered before)."""
    data = path.read_bytes()
    at = data.index(b'"offset": ', data.index(b'"offset": ') + 1) + len(b'"offset": ')
    digit = data[at : at + 1]
    path.write_bytes(data[:at] + (b"1" if digit != b"1" else b"2") + data[at + 1 :])


def damage_empty(path: Path) -> None:
    path.write_bytes(b"")


def damage_not_a_checkpoint(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


DAMAGE = {
    "truncated": (damage_truncate, "checksum does not match"),
    "payload byte": (damage_payload_byte, "checksum does not match"),
    "header digit": (damage_header_digit, "checksum does not match"),
    "empty": (damage_empty, "does not start like a bellman checkpoint"),
    "random bytes": (damage_not_a_checkpoint, "does not start like a bellman checkpoint"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_any_damage_is_detected_and_named(finished: Path, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "update_000000016.ckpt"
    shutil.copy(checkpoints(finished)[-1], path)
    make, why = DAMAGE[damage]
    make(path)
    with pytest.raises(CheckpointError, match=why) as raised:
        ckpt.read_arrays(path)
    assert str(path) in str(raised.value)


def resealed_with(finished: Path, tmp_path: Path, change: Any) -> Path:
    path = tmp_path / "update_000000016.ckpt"
    header, meta, payload = split(checkpoints(finished)[-1])
    reseal(path, change(header, meta), payload)
    return path


def first_entry(meta: dict[str, Any]) -> dict[str, Any]:
    return meta["parts"]["algo"]["leaves"][0]


def offset_past_the_end(header: bytes, meta: dict[str, Any]) -> bytes:
    first_entry(meta)["offset"] = 10**12
    return json.dumps(meta).encode()


def object_dtype(header: bytes, meta: dict[str, Any]) -> bytes:
    first_entry(meta)["dtype"] = "|O"
    return json.dumps(meta).encode()


def negative_shape(header: bytes, meta: dict[str, Any]) -> bytes:
    first_entry(meta)["shape"] = [-1, 4]
    return json.dumps(meta).encode()


def not_json(header: bytes, meta: dict[str, Any]) -> bytes:
    return b"{not json" + header[9:]


CRAFTED = {
    "offset past the end": (offset_past_the_end, "runs past the payload"),
    "object dtype": (object_dtype, "not a plain number type"),
    "negative shape": (negative_shape, "negative shape"),
    "unparseable header": (not_json, "header does not parse"),
}


@pytest.mark.parametrize("craft", sorted(CRAFTED))
def test_a_header_made_to_pass_the_checksum_is_still_refused(
    finished: Path, tmp_path: Path, craft: str
) -> None:
    change, why = CRAFTED[craft]
    path = resealed_with(finished, tmp_path, change)
    with pytest.raises(CheckpointError, match=why):
        ckpt.read_arrays(path)


def test_eval_falls_back_over_a_damaged_newest_checkpoint(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    older, newest = checkpoints(copy)
    damage_header_digit(newest)
    before = files(copy)
    code, out, err = cli(capsys, "eval", str(copy), "--episodes", "2", "--json")
    assert code == 0, err
    assert err.strip() == (
        f"bellman: warning: checkpoint {newest} is damaged (its checksum does not match: "
        f"truncated or altered); using {older.name}"
    )
    assert json.loads(out)["seeds"] == 2
    assert files(copy) == before, "eval changes nothing in the run directory"


def test_eval_with_no_intact_checkpoint_is_one_sentence(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    older, newest = checkpoints(copy)
    damage_truncate(newest)
    damage_empty(older)
    before = files(copy)
    code, _, err = cli(capsys, "eval", str(copy))
    assert_one_sentence(code, err, 1, "no intact checkpoint", newest.name, older.name)
    assert files(copy) == before, "damaged files are kept as they are"


def test_resume_falls_back_keeps_the_damaged_file_and_finishes(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older, newest = checkpoints(stopped)
    damage_payload_byte(newest)
    damaged = newest.read_bytes()
    code, out, err = cli(capsys, "train", "ppo", "--resume", str(stopped), "--quiet")
    assert code == 0, err
    aside = stopped / "checkpoints" / "damaged" / newest.name
    assert err.strip() == (
        f"bellman: warning: checkpoint {newest} is damaged (its checksum does not match: "
        f"truncated or altered); moved it to {aside} and resumed from {older.name}"
    )
    assert aside.read_bytes() == damaged, "the damaged file is kept, byte for byte"
    assert out.strip().splitlines()[-1] == str(stopped)
    summary = json.loads((stopped / "summary.json").read_text())
    assert summary["resumed"] and len(summary["final_return_per_seed"]) == 2
    assert [u for u, _ in ckpt.list_checkpoints(stopped / "checkpoints")] == [14, 16]


def test_a_checkpoint_with_nan_parameters_is_not_used(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint written before states were checked (or by hand) whose weights are NaN."""
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    older, newest = checkpoints(copy)
    header, meta, payload = split(newest)
    entry = next(e for e in meta["parts"]["algo"]["leaves"] if e["dtype"] == "<f4")
    size = int(np.prod(entry["shape"])) * 4
    nan = np.full(size // 4, np.nan, np.float32).tobytes()
    start = entry["offset"]
    reseal(newest, header, payload[:start] + nan + payload[start + size :])
    code, _, err = cli(capsys, "eval", str(copy), "--episodes", "2")
    assert code == 0, err
    assert "holds NaN or infinite parameters (seed(s) 0, 1)" in err
    assert f"using {older.name}" in err


# ----- the run directory -----


def test_a_garbage_line_in_metrics_is_skipped_and_every_good_record_kept(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = stopped / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    good = [json.loads(line) for line in lines]
    lines.insert(5, "\x00garbage{")
    metrics.write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, "train", "ppo", "--resume", str(stopped), "--quiet")
    assert code == 0, err
    assert err.count(f"bellman: warning: {metrics}: line(s) 6 are not metrics records") == 1
    after = [json.loads(line) for line in metrics.read_text().splitlines()]
    kept = [r for r in good if r["update"] <= 16 and "episode_return" in r]
    assert [r for r in after if "episode_return" in r] == kept, "no good record is dropped"


def test_a_line_cut_off_by_a_kill_is_skipped(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = stopped / "metrics.jsonl"
    text = metrics.read_text()
    metrics.write_text(text + '{"step": 9999, "upda')
    code, _, err = cli(capsys, "train", "ppo", "--resume", str(stopped), "--quiet")
    assert code == 0, err
    assert f"bellman: warning: {metrics}: line(s) {len(text.splitlines()) + 1} are not" in err
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["update"] for r in records if "episode_return" in r] == list(range(1, 17))
    assert len(records) == 17, "the chunks' records and one final evaluation"


def test_resume_trims_metrics_to_exactly_the_checkpoint(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records logged after the checkpoint a run resumes from are logged again, once."""
    newest = checkpoints(stopped)[-1]
    newest.unlink()  # resume from 14: the records of updates 15 and 16 must not appear twice
    code, _, err = cli(capsys, "train", "ppo", "--resume", str(stopped), "--quiet")
    assert code == 0, err
    records = [json.loads(line) for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    updates = [r["update"] for r in records if "episode_return" in r]
    assert updates == list(range(1, 17))


def test_resume_without_checkpoints_refuses_instead_of_starting_over(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(stopped / "checkpoints")
    before = files(stopped)
    code, _, err = cli(capsys, "train", "ppo", "--resume", str(stopped))
    assert_one_sentence(code, err, 1, "holds no checkpoint to resume from", "start a new run")
    assert files(stopped) == before, "nothing is written, no record duplicated"


def test_resume_with_a_garbage_summary_is_one_sentence(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stopped / "summary.json").write_text("{garbage")
    before = files(stopped)
    code, _, err = cli(capsys, "train", "ppo", "--resume", str(stopped))
    assert_one_sentence(code, err, 1, "summary.json is damaged", "move it away")
    assert files(stopped) == before


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda c: "{not json", "is unreadable or not valid JSON"),
        (lambda c: json.dumps({**c, "plan": None}), "has no valid 'plan'"),
        (lambda c: json.dumps({k: v for k, v in c.items() if k != "algo"}), "'algo'"),
        (
            lambda c: json.dumps({**c, "config": {**c["config"], "learning_rate": -1.0}}),
            "holds a setting bellman refuses",
        ),
        (
            lambda c: json.dumps({**c, "settings": {**c["settings"], "seeds": "many"}}),
            "holds a setting bellman refuses",
        ),
    ],
    ids=["not json", "no plan", "no algo", "bad learning rate", "bad seeds"],
)
def test_a_damaged_config_is_one_sentence(
    stopped: Path, capsys: pytest.CaptureFixture[str], change: Any, fragment: str
) -> None:
    config = stopped / "config.json"
    config.write_text(change(json.loads(config.read_text())))
    before = files(stopped)
    for command in (["eval", str(stopped)], ["train", "ppo", "--resume", str(stopped)]):
        code, _, err = cli(capsys, *command)
        assert_one_sentence(code, err, 1, fragment)
    assert files(stopped) == before


def test_a_second_writer_is_refused_with_the_pid(tmp_path: Path) -> None:
    out = tmp_path / "live"
    args = ["train", "ppo", "--env", "CartPole-v1", "--steps", "200000000", "--quiet"]
    first = subprocess.Popen(
        [sys.executable, "-m", "bellman", *args, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (out / "metrics.jsonl").is_file():
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.05)
        second = run_cli("train", "ppo", "--resume", str(out))
        assert_one_sentence(
            second.returncode, second.stderr, 1, "is in use by another bellman process",
            f"PID {first.pid}",
        )  # fmt: skip
        third = run_cli("train", "ppo", "--env", "CartPole-v1", "--out", str(out))
        assert_one_sentence(third.returncode, third.stderr, 1, "already exists")
    finally:
        first.terminate()
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 143, stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    updates = [r["update"] for r in records]
    assert updates == sorted(set(updates)), "one writer: records in order, none twice"
    after = RunDir.open(out)
    after.lock()  # the lock ended with its process
    after.unlock()


# ----- diverged states: the last checkpoint is always a good one -----

FAMILIES = {
    "q-learning": ["--env", "CliffWalking-v0", "--steps", "400", "--log-every", "100"],
    "reinforce": ["--env", "CartPole-v1", "--steps", "6000", "--log-every", "1500"],
    "ppo": ["--env", "CartPole-v1", "--steps", "2048", "--log-every", "512"],
    "dqn": [
        "--env", "CartPole-v1", "--steps", "2000", "--log-every", "500",
        "--learning-starts", "200",
    ],
    "ddpg": [
        "--env", "Pendulum-v1", "--steps", "800", "--log-every", "200",
        "--learning-starts", "100",
    ],
    "sac": [
        "--env", "Pendulum-v1", "--steps", "800", "--log-every", "200",
        "--learning-starts", "100",
    ],
}  # fmt: skip
"""Tiny runs of every algorithm family, one chunk per log record (checkpointed as often)."""


def family_args(algo: str) -> list[str]:
    args = FAMILIES[algo]
    every = args[args.index("--log-every") + 1]
    return [*args, "--checkpoint-every", every, "--evals", "0", "--eval-episodes", "1"]


def nan_floats(x: jax.Array) -> jax.Array:
    return jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x


@pytest.mark.parametrize("algo", sorted(FAMILIES))
def test_a_diverged_state_is_never_checkpointed(
    algo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state turns NaN in the second chunk while its metrics stay finite (what a check of
    the metrics alone misses): the run stops, and the checkpoint it names is finite."""
    original = CompiledRunner.run_chunk

    def poisoned(self: Any, state: Any, first_update: int) -> Any:
        state, result = original(self, state, first_update)
        return (jax.tree.map(nan_floats, state) if first_update > 0 else state), result

    monkeypatch.setattr(CompiledRunner, "run_chunk", poisoned)
    out = tmp_path / algo
    code, _, err = cli(capsys, "train", algo, *family_args(algo), "--out", str(out))
    line = assert_one_sentence(
        code, err, 1, "training diverged", "the last good checkpoint is kept"
    )
    kept = checkpoints(out)
    assert kept and str(kept[-1]) in line
    for path in kept:
        for leaves in ckpt.read_arrays(path).values():
            assert all(np.isfinite(x).all() for x in leaves if x.dtype.kind == "f")


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_a_diverging_step_size_keeps_a_finite_checkpoint(
    algo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / algo
    args = [*family_args(algo), "--learning-rate", "1e30", "--out", str(out)]
    code, _, err = cli(capsys, "train", algo, *args)
    line = assert_one_sentence(code, err, 1, "training diverged", "try a lower learning rate")
    kept = checkpoints(out)
    assert str(kept[-1]) in line
    trained = open_run(out)  # the named checkpoint loads, and every number in it is finite
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(trained.algo_state))


# ----- full disks and refused permissions -----


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_save = ckpt.save

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def save(path: Path, parts: dict[str, Any], meta: dict[str, Any]) -> None:
        if meta["update"] < 6:
            return real_save(path, parts, meta)
        with monkeypatch.context() as scoped:  # the disk is full from update 6 on
            scoped.setattr(ckpt.os, "fsync", full)
            return real_save(path, parts, meta)

    monkeypatch.setattr(ckpt, "save", save)
    out = tmp_path / "full"
    code, _, err = cli(capsys, "train", "ppo", "--env", "CartPole-v1", "--out", str(out), *SMALL)
    line = assert_one_sentence(code, err, 1, "No space left on device", "--resume")
    kept = checkpoints(out)
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [2, 4]
    assert str(kept[-1]) in line
    assert not list((out / "checkpoints").glob(".*.tmp")), "no half-written file is left"
    monkeypatch.setattr(ckpt, "save", real_save)  # space again: the run resumes and ends
    code, _, err = cli(capsys, "train", "ppo", "--resume", str(out), "--quiet")
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["resumed"]


def test_a_full_disk_while_logging_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bellman.experiment import logger

    original = logger.MetricsLogger.log

    def log(self: Any, record: dict[str, Any]) -> None:
        if record["update"] >= 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "metrics.jsonl")
        original(self, record)

    monkeypatch.setattr(logger.MetricsLogger, "log", log)
    out = tmp_path / "full"
    code, _, err = cli(capsys, "train", "ppo", "--env", "CartPole-v1", "--out", str(out), *SMALL)
    assert_one_sentence(code, err, 1, "No space left on device: metrics.jsonl", "--resume")
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [2, 4]


def test_permission_denied_on_a_checkpoint_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith("update_000000006.ckpt"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    out = tmp_path / "denied"
    code, _, err = cli(capsys, "train", "ppo", "--env", "CartPole-v1", "--out", str(out), *SMALL)
    assert_one_sentence(code, err, 1, "Permission denied", "update_000000006.ckpt")
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [2, 4]


def test_a_run_directory_that_cannot_be_made_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = cli(capsys, "train", "ppo", "--env", "CartPole-v1", "--out", f"{blocker}/run")
    assert_one_sentence(code, err, 1, "cannot create run directory")
    assert blocker.read_text() == "not a folder"


# ----- nothing runs that was not asked for -----

EVIL = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the module ran")
import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), float(action), self.t >= 5, False, {}
"""


@pytest.fixture
def user_env_run(tmp_path: Path) -> Path:
    """A run trained on a user env (`evilmod:Corridor`), and the module that marks an import."""
    (tmp_path / "evilmod.py").write_text(EVIL)
    out = tmp_path / "run"
    args = ["train", "ppo", "--env", "evilmod:Corridor", "--steps", "512", "--num-envs", "2"]
    result = run_cli(*args, "--evals", "0", "--eval-episodes", "1", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (tmp_path / "IMPORTED").unlink()
    (out / "summary.json").unlink()  # resumable too
    return out


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_opening_a_run_never_imports_the_code_it_names(user_env_run: Path, command: str) -> None:
    args = ["eval", "run"] if command == "eval" else ["train", "ppo", "--resume", "run"]
    result = run_cli(*args, cwd=user_env_run.parent)
    assert_one_sentence(
        result.returncode, result.stderr, 2, "user env 'evilmod:Corridor'",
        "imports the module 'evilmod'", "--trust-env",
    )  # fmt: skip
    assert not (user_env_run.parent / "IMPORTED").exists(), "the module did not run"


def test_trust_env_opens_the_run(user_env_run: Path) -> None:
    result = run_cli("eval", "run", "--episodes", "1", "--trust-env", cwd=user_env_run.parent)
    assert result.returncode == 0, result.stderr
    assert (user_env_run.parent / "IMPORTED").exists()


def test_the_python_api_refuses_too(user_env_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(user_env_run.parent)
    monkeypatch.syspath_prepend(str(user_env_run.parent))
    with pytest.raises(UntrustedCodeError, match="--trust-env"):
        bellman.load(user_env_run)
    with pytest.raises(UntrustedCodeError, match="trust_env=True"):
        bellman.evaluate(user_env_run)
    with pytest.raises(UntrustedCodeError):
        bellman.resume(user_env_run)
    assert not (user_env_run.parent / "IMPORTED").exists()


class Planted:
    """A pickle that would leave a mark if it were ever unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.marker, "the planted file ran"))


def test_a_planted_cache_file_never_runs(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    env = {**os.environ, "BELLMAN_CACHE_DIR": str(cache)}
    args = ["train", "ppo", "--env", "CartPole-v1", "--steps", "2048", "--evals", "0"]
    first = subprocess.run(
        [sys.executable, "-m", "bellman", *args, "--out", str(tmp_path / "a"), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    stored = sorted((cache / "programs").glob("*.bin"))
    assert stored, "the first run stored its programs"
    marker = tmp_path / "MARKER"
    for path in stored:  # every stored program replaced by a planted pickle
        path.write_bytes(pickle.dumps(Planted(marker)))
    second = subprocess.run(
        [sys.executable, "-m", "bellman", *args, "--out", str(tmp_path / "b"), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert not marker.exists(), "no planted file was unpickled"
    a = json.loads((tmp_path / "a" / "summary.json").read_text())["final_return_per_seed"]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())["final_return_per_seed"]
    assert a == b, "recompiled, the run is the same"


def test_a_cache_others_can_write_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    cache.chmod(0o777)
    env = {**os.environ, "BELLMAN_CACHE_DIR": str(cache)}
    args = ["train", "ppo", "--env", "CartPole-v1", "--steps", "1024", "--evals", "0", "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "bellman", *args, "--out", str(tmp_path / "run")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        f"bellman: warning: not using the program cache {cache}: it is writable by other users "
        f"(chmod go-w {cache} to use it)"
    )
    assert not (cache / "programs").exists()


# ----- user envs and inputs, end to end (their full tables: test_user_envs.py, test_bad_inputs.py)

FAILING_ENV = """
import gymnasium as gym
import numpy as np


class Sim(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t > 3:
            raise ConnectionError("the simulator went away")
        return np.zeros(2, np.float32), 1.0, False, False, {}
"""


@pytest.mark.parametrize("debug", [False, True])
def test_a_user_env_failing_mid_run_is_one_sentence_or_a_traceback_with_debug(
    tmp_path: Path, debug: bool
) -> None:
    (tmp_path / "simmod.py").write_text(FAILING_ENV)
    args = ["train", "ppo", "--env", "simmod:Sim", "--steps", "512", "--evals", "0", "--quiet"]
    result = run_cli(*args, *(["--debug"] if debug else []), "--out", "run", cwd=tmp_path)
    sentence = (
        "bellman: error: environment 'simmod:Sim' raised ConnectionError in step() at "
        "simmod.py:18: the simulator went away"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == sentence
    if debug:
        assert "Traceback" in result.stderr and 'simmod.py", line 18' in result.stderr
    else:
        assert result.stderr.strip() == sentence


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--steps", "10000000000000"], "steps must be at most 2,147,483,647"),
        (["--buffer-size", "100000000000"], "the replay memory would take"),
    ],
)
def test_sizes_that_would_overflow_or_not_fit_leave_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], fragment: str
) -> None:
    out = tmp_path / "never"
    code, _, err = cli(capsys, "train", "dqn", "--env", "CartPole-v1", *flags, "--out", str(out))
    assert_one_sentence(code, err, 2, fragment)
    assert not out.exists(), "refused before the run directory is made"
