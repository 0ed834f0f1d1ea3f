"""Datasets of transitions in Minari's format: written by `bellman collect`, read by the offline
algorithms (`bellman train bc|td3bc|cql|iql --dataset DIR`).

A dataset is a directory `<name>-v<N>/` holding `data/` in Minari's own layout (its
`metadata.json` and an HDF5 file of episodes), so that `minari.load_dataset("<name>-v<N>")` reads
it with `MINARI_DATASETS_PATH` set to the parent directory, and `minari.MinariDataset(DIR /
"data")` from anywhere. Each episode keeps T + 1 observations, T actions, rewards, terminations
and truncations apart. Its metadata records the reference returns of D4RL's normalised score,

    score = 100 (return - random) / (expert - random),

`ref_min_score` (the uniformly random policy's mean return) and `ref_max_score` (the expert's).

A dataset is data: bellman reads its metadata as JSON and its arrays from HDF5, and refuses one
whose metadata lacks the spaces (Minari would then make the env its metadata names, importing
whatever code that names).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bellman.errors import BellmanError

METADATA = Path("data") / "metadata.json"
VERSION = re.compile(r"-v\d+$")
ROOT_VARIABLE = "MINARI_DATASETS_PATH"


class DatasetError(BellmanError):
    """A dataset that is missing, malformed, or does not fit the env or the algorithm."""


@dataclass(frozen=True)
class Transitions:
    """Every step of a dataset's episodes, `[N, ...]` numpy arrays: `obs` and `next_obs` (the
    true next observation, the final one where an episode ended), `action`, `reward`,
    `terminated` and `truncated` (kept apart: only a termination stops bootstrapping)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.reward)


@dataclass(frozen=True)
class Dataset:
    """A dataset read from disk."""

    path: Path
    """The dataset's directory (`<name>-v<N>`, holding `data/`)."""
    dataset_id: str
    transitions: Transitions
    episode_returns: np.ndarray
    """`[episodes]` each episode's undiscounted return."""
    ref_min_score: float | None
    """The random policy's mean return (D4RL's 0 of the normalised score), or None."""
    ref_max_score: float | None
    """The expert's mean return (D4RL's 100), or None."""
    env_id: str | None
    """The gymnasium id of the env the data came from, if the metadata names one."""
    observation_space: Any
    action_space: Any
    metadata: dict[str, Any]

    @property
    def episodes(self) -> int:
        return len(self.episode_returns)

    def normalized(self, returns: Any) -> np.ndarray:
        """100 (return - random) / (expert - random); DatasetError without reference returns."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise DatasetError(
                f"{self.path} records no reference returns (ref_min_score, ref_max_score), so "
                "its scores cannot be normalised"
            )
        span = self.ref_max_score - self.ref_min_score
        return 100.0 * (np.asarray(returns, np.float64) - self.ref_min_score) / span


def normalized_score(returns: Any, ref_min: float, ref_max: float) -> np.ndarray:
    """D4RL's normalised score: 100 (return - random) / (expert - random)."""
    return 100.0 * (np.asarray(returns, np.float64) - ref_min) / (ref_max - ref_min)


def roots() -> list[Path]:
    """Where `bellman list datasets` and a bare dataset name look: `./datasets` and Minari's
    own root (`$MINARI_DATASETS_PATH`, default `~/.minari/datasets`)."""
    found = [Path("datasets")]
    env = os.environ.get(ROOT_VARIABLE)
    found.append(Path(env) if env else Path.home() / ".minari" / "datasets")
    return found


def locate(name: str | os.PathLike[str]) -> Path:
    """The directory of a dataset given as a path (its `<name>-v<N>` directory or the `data/`
    inside) or as a name under one of `roots()`; DatasetError naming what was tried."""
    path = Path(name)
    candidates = [path, *(root / path for root in roots() if not path.is_absolute())]
    for candidate in candidates:
        if (candidate / METADATA).is_file():
            return candidate
        if candidate.name == "data" and (candidate / "metadata.json").is_file():
            return candidate.parent
    tried = ", ".join(str(c) for c in candidates)
    raise DatasetError(
        f"no dataset at {name} (looked for {METADATA} in {tried}); make one with bellman "
        "collect RUN_DIR --out DIR, or see bellman list datasets"
    )


def read_metadata(path: Path) -> dict[str, Any]:
    """A dataset's metadata, read as JSON and checked: DatasetError for a damaged file or one
    without the spaces."""
    file = path / METADATA
    try:
        metadata = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {file}: {exc}") from exc
    if not isinstance(metadata, dict):
        raise DatasetError(f"{file} is not a JSON object")
    missing = [k for k in ("observation_space", "action_space", "data_format") if k not in metadata]
    if missing:
        raise DatasetError(
            f"{file} lacks {', '.join(missing)}; bellman reads only datasets that describe their "
            "spaces (without them, Minari would make the env the metadata names, running its code)"
        )
    return metadata


def read(name: str | os.PathLike[str]) -> Dataset:
    """The dataset at `name` (see `locate`), every episode flattened into transitions."""
    import minari

    path = locate(name)
    metadata = read_metadata(path)
    try:
        data = minari.MinariDataset(path / "data")
        episodes = list(data.iterate_episodes())
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise DatasetError(f"cannot read the dataset at {path}: {exc}") from exc
    if not episodes:
        raise DatasetError(f"the dataset at {path} holds no episodes")
    parts: dict[str, list[np.ndarray]] = {f: [] for f in Transitions.__dataclass_fields__}
    returns = []
    for episode in episodes:
        obs = np.asarray(episode.observations)
        if not isinstance(episode.observations, np.ndarray) or len(obs) != len(episode) + 1:
            raise DatasetError(
                f"episode {episode.id} of {path} does not hold one array of T + 1 observations "
                "(bellman reads Box and Discrete spaces)"
            )
        parts["obs"].append(obs[:-1])
        parts["next_obs"].append(obs[1:])
        parts["action"].append(np.asarray(episode.actions))
        parts["reward"].append(np.asarray(episode.rewards, np.float32))
        parts["terminated"].append(np.asarray(episode.terminations, bool))
        parts["truncated"].append(np.asarray(episode.truncations, bool))
        returns.append(float(np.sum(episode.rewards, dtype=np.float64)))
    transitions = Transitions(**{k: np.concatenate(v) for k, v in parts.items()})
    env_id = None
    if isinstance(metadata.get("env_spec"), str):
        with contextlib.suppress(json.JSONDecodeError, TypeError):
            env_id = json.loads(metadata["env_spec"]).get("id")
    return Dataset(
        path=path,
        dataset_id=str(metadata.get("dataset_id", path.name)),
        transitions=transitions,
        episode_returns=np.asarray(returns),
        ref_min_score=_number(metadata.get("ref_min_score")),
        ref_max_score=_number(metadata.get("ref_max_score")),
        env_id=env_id,
        observation_space=data.observation_space,
        action_space=data.action_space,
        metadata=metadata,
    )


def check_fits(data: Dataset, spec: Any) -> None:
    """Raise DatasetError unless the dataset's observations and actions fit the env's spec
    (`bellman.envs.spaces.EnvSpec`)."""
    from bellman.envs.spaces import Box, Discrete

    t = data.transitions
    if t.obs.shape[1:] != tuple(spec.obs_shape):
        raise DatasetError(
            f"{data.path} holds observations of shape {t.obs.shape[1:]}, and {spec.id}'s are "
            f"{tuple(spec.obs_shape)}: it was not collected in this env"
        )
    space = spec.action_space
    if isinstance(space, Discrete):
        ok = t.action.ndim == 1 and np.issubdtype(t.action.dtype, np.integer)
        if not ok or t.action.min() < 0 or t.action.max() >= space.n:
            raise DatasetError(
                f"{data.path} holds actions that are not among {spec.id}'s {space.n} discrete "
                "actions"
            )
    elif isinstance(space, Box) and t.action.shape[1:] != tuple(space.shape):
        raise DatasetError(
            f"{data.path} holds actions of shape {t.action.shape[1:]}, and {spec.id}'s are "
            f"{tuple(space.shape)}"
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def dataset_id_for(out: str | os.PathLike[str]) -> tuple[Path, str]:
    """The directory a new dataset is written to and its Minari id: `out`'s name with `-v0`
    added unless it ends in a version already (Minari's ids are `<name>-v<N>`)."""
    path = Path(out)
    name = path.name if VERSION.search(path.name) else f"{path.name}-v0"
    if not re.fullmatch(r"[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*-v\d+", name):
        raise DatasetError(
            f"a dataset's name is letters, digits, '_', '.' and '-' ending in -v<N>, not {name!r}"
        )
    target = path.with_name(name)
    if target.exists():
        raise DatasetError(f"{target} exists already; remove it or name another --out")
    return target, name


@contextlib.contextmanager
def datasets_root(root: Path) -> Iterator[None]:
    """Minari's datasets root set to `root` for the duration (Minari writes a new dataset
    under `$MINARI_DATASETS_PATH/<id>`)."""
    root.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(ROOT_VARIABLE)
    os.environ[ROOT_VARIABLE] = str(root.resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ROOT_VARIABLE, None)
        else:
            os.environ[ROOT_VARIABLE] = previous


@dataclass(frozen=True)
class Episode:
    """One episode to write: `[T + 1, ...]` observations, `[T, ...]` actions, `[T]` rewards,
    terminations and truncations."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


def write(
    out: str | os.PathLike[str],
    episodes: Sequence[Episode],
    *,
    observation_space: Any,
    action_space: Any,
    env_id: str | None,
    ref_min_score: float,
    ref_max_score: float,
    algorithm_name: str,
    description: str,
    reference_episodes: int = 100,
) -> Path:
    """Write `episodes` as a new Minari dataset at `out` (see `dataset_id_for`) with Minari's
    `create_dataset_from_buffers`; returns its directory."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    target, dataset_id = dataset_id_for(out)
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=np.asarray(e.observations),
            actions=np.asarray(e.actions),
            rewards=list(np.asarray(e.rewards, np.float64)),
            terminations=list(np.asarray(e.terminations, bool)),
            truncations=list(np.asarray(e.truncations, bool)),
            infos={},
        )
        for i, e in enumerate(episodes)
    ]
    spec = None
    if env_id is not None:
        with contextlib.suppress(gym.error.Error):
            spec = gym.spec(env_id)
    with datasets_root(target.parent), _quiet():
        written = minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            env=spec,
            eval_env=spec,
            algorithm_name=algorithm_name,
            author="bellman",
            author_email="-",
            code_permalink="-",
            action_space=action_space,
            observation_space=observation_space,
            ref_min_score=ref_min_score,
            ref_max_score=ref_max_score,
            description=description,
            data_format="hdf5",
        )
    record_references(written, ref_min_score, ref_max_score, reference_episodes)
    return target


def record_references(dataset: Any, ref_min: float, ref_max: float, episodes: int) -> None:
    """The reference returns, each the mean over `episodes` episodes, in a new dataset's
    metadata (Minari records them only with an env it can make for evaluation)."""
    dataset.storage.update_metadata(
        {
            "ref_min_score": float(ref_min),
            "ref_max_score": float(ref_max),
            "num_episodes_average_score": int(episodes),
        }
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Minari's warnings about optional metadata, silenced."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="minari")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*minari.*")
        yield


def listing() -> list[dict[str, Any]]:
    """The datasets under `roots()`: path, id, episodes, steps, env, reference returns."""
    found = []
    for root in roots():
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.iterdir() if (p / METADATA).is_file()):
            try:
                metadata = read_metadata(path)
            except DatasetError:
                continue
            env_id = None
            with contextlib.suppress(json.JSONDecodeError, TypeError, AttributeError):
                env_id = json.loads(metadata.get("env_spec") or "null").get("id")
            found.append(
                {
                    "path": str(path),
                    "id": metadata.get("dataset_id", path.name),
                    "episodes": metadata.get("total_episodes"),
                    "steps": metadata.get("total_steps"),
                    "env": env_id,
                    "algorithm": metadata.get("algorithm_name"),
                    "ref_min_score": metadata.get("ref_min_score"),
                    "ref_max_score": metadata.get("ref_max_score"),
                }
            )
    return found


def remove(path: Path) -> None:
    """Delete a dataset directory (a half-written one after a failure)."""
    shutil.rmtree(path, ignore_errors=True)
