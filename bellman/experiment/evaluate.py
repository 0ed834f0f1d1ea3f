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

import gymnasium as gym
import jax
import numpy as np

from bellman.envs import registry
from bellman.envs.games import GameEnv
from bellman.envs.gymnasium_env import make_single
from bellman.envs.spaces import EnvSpec
from bellman.errors import ConfigError, EnvError
from bellman.experiment.policy import Policy, TrainedRun, open_run
from bellman.experiment.settings import check_evaluation, check_evaluation_request
from bellman.experiment.train import eval_env_seed, eval_keys
from bellman.runners.control import ControlEvaluator
from bellman.runners.evaluation import DEFAULT_MAX_STEPS, JaxEvaluator, evaluate_gymnasium
from bellman.runners.selfplay import GameEvaluator, agent_player


def evaluate(
    target: str | Path | Policy,
    env: Any = None,
    episodes: int = 20,
    *,
    seed: int = 0,
    deterministic: bool = True,
    backend: str | None = None,
    video: bool = False,
    trust_env: bool = False,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Evaluate a trained run, or a policy on an env you name, on fresh episodes.

    - `evaluate(run_dir)`: every seed of the run on the env it trained on, what `bellman eval`
      prints (`backend`, `video`, `trust_env`, `checkpoint="best"` as there); a run trained on
      an env object takes that object again as `env`;
    - `evaluate(policy, env)`: a `Policy` (`bellman.load`) on `env`, an env id (a compiled env
      runs all episodes in one program), a `gymnasium.Env` or a JAX env object, as long as its
      observations and actions are the policy's; `deterministic=False` samples the actions.
    """
    if isinstance(target, Policy):
        if video or checkpoint is not None or trust_env:
            raise ConfigError("video, checkpoint and trust_env apply to evaluating a run directory")
        return evaluate_policy(target, env, episodes, seed, deterministic, backend)
    if isinstance(env, str | gym.Env):
        raise ConfigError(
            "evaluate(run_dir) uses the env the run trained on; to evaluate on another env, "
            "give its policy: evaluate(bellman.load(run_dir), env)"
        )
    if not deterministic:
        raise ConfigError(
            "a run's result is its greedy policy's; to sample actions, evaluate its policy: "
            "evaluate(bellman.load(run_dir), env, deterministic=False)"
        )
    return evaluate_run(target, episodes, backend, video, seed, trust_env, checkpoint, env)


def evaluate_policy(
    policy: Policy,
    env: Any,
    episodes: int = 20,
    seed: int = 0,
    deterministic: bool = True,
    backend: str | None = None,
) -> dict[str, Any]:
    """One policy on `env` for `episodes` episodes: return and length, mean, std and each."""
    check_evaluation_request(episodes, seed, backend)
    if env is None:
        raise ConfigError("evaluate(policy, env) needs the env to evaluate the policy on")
    if isinstance(env, gym.Env):
        returns, lengths = host_episodes(policy, env, episodes, seed, deterministic)
        name = env.spec.id if env.spec is not None else type(env).__name__
    else:
        resolved = registry.resolve(env, backend or "auto")
        check_compatible(policy.spec, resolved.spec)
        check_evaluation(resolved, 1, episodes)
        name = resolved.id
        run = policy.run
        state = jax.tree.map(lambda x: x[None], policy.state)
        if not deterministic:
            if resolved.make_gym is None:
                raise EnvError(
                    f"'{resolved.id}' has no gymnasium twin to sample a policy in; evaluate it "
                    "deterministically, or give a gymnasium env"
                )
            instance = make_single(resolved.make_gym)
            try:
                returns, lengths = host_episodes(policy, instance, episodes, seed, False)
            finally:
                instance.close()
        elif resolved.backend == "compiled":
            assert resolved.jax_env is not None
            evaluator = JaxEvaluator(run.info.module, [run.config], resolved.jax_env, episodes, 1)
            many, steps = evaluator(state, eval_keys(seed, 1, 2**30))
            returns, lengths = many[0], steps[0]
        else:
            assert resolved.make_gym is not None
            many, steps = evaluate_gymnasium(
                run.info.module,
                run.config,
                resolved.spec,
                resolved.id,
                resolved.make_gym,
                state,
                episodes,
                seed=eval_env_seed(seed, 2**30),
            )
            returns, lengths = many[0], steps[0]
    return {
        "env": name,
        "episodes": episodes,
        "deterministic": deterministic,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "returns": np.asarray(returns, np.float64).tolist(),
        "length_mean": float(np.mean(lengths)),
    }


def check_compatible(trained: EnvSpec, env: EnvSpec) -> None:
    """EnvError unless a policy trained on `trained` can act in `env`."""
    if trained.obs_shape != env.obs_shape or trained.action_space != env.action_space:
        raise EnvError(
            f"the policy was trained on '{trained.id}' (observations {trained.obs_shape}, "
            f"actions {trained.action_space}) and cannot act in '{env.id}' (observations "
            f"{env.obs_shape}, actions {env.action_space})"
        )


def host_episodes(
    policy: Policy, env: gym.Env, episodes: int, seed: int, deterministic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of `episodes` episodes in one gymnasium env, one after the other."""
    limit = env.spec.max_episode_steps if env.spec is not None else None
    returns, lengths = np.zeros(episodes), np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done and lengths[i] < (limit or DEFAULT_MAX_STEPS):
            obs, reward, terminated, truncated, _ = env.step(policy(obs, deterministic))
            returns[i] += float(reward)
            lengths[i] += 1
            done = bool(terminated or truncated)
    return returns, lengths


def evaluate_run(
    run_dir: str | Path,
    episodes: int = 20,
    backend: str | None = None,
    video: bool = False,
    seed: int = 0,
    trust_env: bool = False,
    checkpoint: str | None = None,
    env_object: Any = None,
) -> dict[str, Any]:
    """Evaluate every seed of a run; returns the numbers `bellman eval --json` prints. A run on
    a `module:Class` env imports that module only with `trust_env=True`; a run trained on an
    env object takes it again as `env_object`."""
    check_evaluation_request(episodes, seed, backend)
    trained = open_run(
        run_dir, backend, trust_env=trust_env, checkpoint=checkpoint, env_object=env_object
    )
    if video and trained.info.family == "control":
        raise EnvError(
            f"{trained.info.name} plans each action from the JAX env's state, which the "
            "gymnasium env that renders a video does not expose: evaluate it without --video"
        )
    env = trained.env
    seeds = trained.settings.seeds
    check_evaluation(env, seeds, episodes)
    if env.backend == "compiled":
        assert env.jax_env is not None
        module, config = trained.info.module, trained.config
        evaluator: JaxEvaluator | GameEvaluator
        if isinstance(env.jax_env, GameEnv):  # games against the run's eval_opponent
            evaluator = GameEvaluator(module, [config], env.jax_env, episodes, seeds)  # type: ignore[arg-type]
        elif trained.info.family == "control":  # the controller plans from the env's state
            evaluator = ControlEvaluator(module, [config], env.jax_env, episodes, seeds)
        else:
            evaluator = JaxEvaluator(module, [config], env.jax_env, episodes, seeds)
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
        record = record_game if isinstance(env.jax_env, GameEnv) else record_video
        result["video"] = str(record(trained, seed=seed))
    return result


def record_game(trained: TrainedRun, seed: int = 0, seed_index: int = 0) -> Path:
    """A self-play game of seed `seed_index`'s agent (its evaluation search on both sides) as an
    animated SVG, RUN_DIR/videos/*.svg, drawn by pgx: a browser plays it."""
    import pgx

    env = trained.env.jax_env
    assert isinstance(env, GameEnv)
    state = jax.tree.map(lambda x: x[seed_index], trained.algo_state)
    agent = agent_player(trained.info.module, trained.config, env, state)
    act = jax.jit(lambda s, k: agent(jax.tree.map(lambda x: x[None], s), k)[0])
    key, init_key = jax.random.split(jax.random.PRNGKey(seed))
    game = env.init(init_key)
    frames = [game]
    while not bool(game.terminated):
        key, k = jax.random.split(key)
        game = env.play(game, act(game, k))
        frames.append(game)
    videos = trained.run_dir.path / "videos"
    videos.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = videos / f"{trained.info.name}-seed{seed_index}-{stamp}.svg"
    pgx.save_svg_animation(frames, path, frame_duration_seconds=0.6)
    return path


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
