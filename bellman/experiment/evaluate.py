"""`bellman eval`: the greedy policy of a trained run on fresh episodes, and an optional video.

A run trained on a JAX env is evaluated in that env (all seeds in one compiled call) unless
`backend="gymnasium"` asks for its gymnasium twin; videos are always rendered through gymnasium's
renderer, in the twin (CartPole-v1 trained in gymnax is rendered by gymnasium's CartPole-v1).
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bellman.envs import registry
from bellman.envs.gymnasium_env import make_single
from bellman.errors import EnvError
from bellman.experiment.policy import Policy, TrainedRun, open_run
from bellman.experiment.settings import check_evaluation, check_evaluation_request
from bellman.experiment.train import eval_env_seed, eval_keys
from bellman.runners.evaluation import JaxEvaluator, evaluate_gymnasium


def evaluate_run(
    run_dir: str | Path,
    episodes: int = 20,
    backend: str | None = None,
    video: bool = False,
    seed: int = 0,
    trust_env: bool = False,
) -> dict[str, Any]:
    """Evaluate every seed of a run; returns the numbers `bellman eval --json` prints. A run on
    a `module:Class` env imports that module only with `trust_env=True`."""
    check_evaluation_request(episodes, seed, backend)
    trained = open_run(run_dir, backend, trust_env=trust_env)
    env = trained.env
    seeds = trained.settings.seeds
    check_evaluation(env, seeds, episodes)
    if env.backend == "compiled":
        assert env.jax_env is not None
        evaluator = JaxEvaluator(trained.info.module, trained.config, env.jax_env, episodes, seeds)
        returns, lengths = evaluator(trained.algo_state, eval_keys(seed, seeds, 2**30))
    else:
        assert env.make_gym is not None
        returns, lengths = evaluate_gymnasium(
            trained.info.module,
            trained.config,
            env.spec,
            env.id,
            env.make_gym,
            trained.algo_state,
            episodes,
            seed=eval_env_seed(seed, 2**30),
        )
    per_seed = returns.mean(axis=1)
    result: dict[str, Any] = {
        "run_dir": str(trained.run_dir.path),
        "algo": trained.info.name,
        "env": env.id,
        "backend": env.backend,
        "episodes": episodes,
        "seeds": seeds,
        "return_mean": float(per_seed.mean()),
        "return_std": float(per_seed.std()),
        "return_per_seed": per_seed.tolist(),
        "length_mean": float(lengths.mean()),
        "video": None,
    }
    if video:
        result["video"] = str(record_video(trained, seed=seed))
    return result


def record_video(trained: TrainedRun, seed: int = 0, seed_index: int = 0) -> Path:
    """Render one greedy episode of seed `seed_index` to RUN_DIR/videos/*.mp4."""
    import imageio.v2 as imageio

    env_id = trained.env.id
    make = trained.env.make_gym
    if make is None:
        raise EnvError(
            f"'{env_id}' has no gymnasium twin to render it; videos need a gymnasium env"
        )
    try:
        env = make_single(make, **registry.render_kwargs())
    except TypeError:
        raise EnvError(f"'{env_id}' does not accept render_mode='rgb_array'") from None
    policy = Policy(trained, seed_index)
    frames = []
    try:
        obs, _ = env.reset(seed=seed)
        frames.append(env.render())
        while True:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            frames.append(env.render())
            if not (terminated or truncated):
                continue
            if info.get("game_over", True):  # Atari: a lost life is not the end of the game
                break
            obs, _ = env.reset()
    finally:
        env.close()
    if not frames or frames[0] is None:
        raise EnvError(f"'{env_id}' returned no frames from render()")
    videos = trained.run_dir.path / "videos"
    videos.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = videos / f"{trained.info.name}-seed{seed_index}-{stamp}.mp4"
    fps = int(env.metadata.get("render_fps", 30) or 30)
    with warnings.catch_warnings():
        # imageio starts ffmpeg with fork+exec, which is safe; JAX warns about any fork
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        writer: Any
        with imageio.get_writer(path, fps=fps, macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(np.asarray(frame, np.uint8))
    return path
