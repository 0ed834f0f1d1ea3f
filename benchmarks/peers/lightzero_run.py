"""LightZero 0.2.0's MuZero (PyTorch, C++ MCTS tree `mz_tree`) on CartPole or tic-tac-toe, or its
AlphaZero (C++ tree `ctree_alphazero`) on tic-tac-toe, with its own zoo configs; prints one JSON
line, the last of stdout (run in the lightzero venv). The venv, from the repository root
(DI-engine 0.5.3 pins setuptools<=66.1.1, which torch 2.13 cannot have, so both go in with
--no-deps after their requirements):

    python3.11 -m venv benchmarks/.venvs/lightzero
    benchmarks/.venvs/lightzero/bin/pip install torch==2.13.0
    benchmarks/.venvs/lightzero/bin/pip install torch==2.13.0 "yapf==0.29.0" "gym==0.25.1" \
        gymnasium "numpy<2,>=1.24.1" "DI-treetensor>=0.4.0" "DI-toolkit>=0.1.0" trueskill \
        "tensorboardX>=2.2" "wandb<=0.19.0" matplotlib "easydict>=1.9" pyyaml enum-tools \
        cloudpickle hickle tabulate "click>=7.0.0" "flask<=2.0.3" "werkzeug<=2.0.3" requests \
        responses URLObject pynng sniffio redis "mpire>=2.3.5" einops "gymnasium[atari]==0.28.0" \
        pympler minigrid moviepy pytest line_profiler xxhash openai pybind11
    benchmarks/.venvs/lightzero/bin/pip install --no-deps DI-engine==0.5.3 LightZero==0.2.0

The wheel ships MuZero's trees compiled but not AlphaZero's (`lzero/mcts/ctree/ctree_alphazero`
holds only its test). Build it from the v0.2.0 source (cmake and a C++ compiler; the source's
pybind11 is a git submodule, replaced by the pybind11 installed above):

    git clone --depth 1 --branch v0.2.0 https://github.com/opendilab/LightZero lz-src
    cd lz-src/lzero/mcts/ctree/ctree_alphazero
    sed -i 's/^add_subdirectory(pybind11)/find_package(pybind11 CONFIG REQUIRED)/' CMakeLists.txt
    PY=<repo>/benchmarks/.venvs/lightzero/bin/python
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE=$PY \
        -Dpybind11_DIR=$($PY -m pybind11 --cmakedir)
    cmake --build build
    cp build/mcts_alphazero.cpython-311-x86_64-linux-gnu.so \
        <venv site-packages>/lzero/mcts/ctree/ctree_alphazero/build/

Then, for example:

    benchmarks/.venvs/lightzero/bin/python benchmarks/peers/lightzero_run.py \
        --algo muzero --env cartpole --max-env-steps 100000 --target 475 --seed 0 \
        --eval-every 2000 [--max-wall-s 360] [--env-id CartPole-v1] [--eval-episodes N] \
        [--no-stop] [--target-on mean|worst] [--eval-bot v0|alpha_beta_pruning]

The configs are the wheel's own `zoo/classic_control/cartpole/config/cartpole_muzero_config.py`,
`zoo/board_games/tictactoe/config/tictactoe_muzero_bot_mode_config.py` and
`tictactoe_alphazero_bot_mode_config.py`, imported and changed only where a CPU-only, one-process,
one-thread run needs it: `policy.cuda=False` (the entry then sets `policy.device='cpu'`),
`env_manager.type='base'` (the zoo's 'subprocess' forks one worker per env; 'base' steps the
collector and evaluator envs in this process), and `env.stop_value=--target` (LightZero's own stop
rule: training ends at the first evaluation whose mean return reaches it; `--no-stop` turns that
off). CartPole runs `--env-id`, by default CartPole-v1 (gymnasium's 500-step cap) where the zoo has
CartPole-v0 (200): the zoo env only calls `gymnasium.make(env_id)`, so the id is all that changes.
On tic-tac-toe the agent trains against the zoo's rule bot 'v0' (bot mode) and is evaluated
against `--eval-bot`: 'v0' as the zoo does, or 'alpha_beta_pruning', LightZero's exact player
(the evaluator envs' config only; the agent always moves first, so a mean return of 0 against it
means no game lost).

Training is LightZero's own entry, `lzero.entry.train_muzero` or `train_alphazero`, unchanged; the
script only subclasses the collector and evaluator it builds (and the evaluator's episode monitor)
to read the env steps, time each evaluation and record its mean and lowest return. LightZero
evaluates every `eval_freq` learner iterations; `--eval-every E` (env steps, > 0) replaces that
with an evaluation whenever E more env steps were collected since the last one (`--eval-every 0`
keeps LightZero's schedule). One last evaluation runs once `--max-env-steps` steps were collected or
once one more collect-and-train iteration (timed as the last one) would pass `--max-wall-s`,
and ends the run (the loop checks at the top of each collect, so the steps overshoot by up to one
collect of `n_episode` episodes, as LightZero's own max_env_step does).

Timing: setup_s runs from process start (imports included) to the start of training: MuZero's
entry evaluates the untrained agent right before its loop, and that evaluation marks it;
AlphaZero's entry does not evaluate before its first update, and the evaluator's construction,
the last step before its loop, marks it. train_s runs from there to the end of the run,
evaluations included (eval_s says how much of it they took). Each curve point's wall time is
taken when its evaluation starts, i.e. when the evaluated weights existed. Tic-tac-toe's env step
is one move of the agent together with the bot's reply.
"""

import argparse
import copy
import importlib
import json
import os
import shutil
import sys
import tempfile
import time

START = time.perf_counter()

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402  (after the thread counts are set)
import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

BOTS = {
    "v0": "LightZero's tictactoe rule bot 'v0' (bot_action_type='v0', the env's default, which the "
    "zoo config keeps): it completes its own two-in-a-row if it can, else blocks one of the "
    "agent's, else plays a uniformly random legal move",
    "alpha_beta_pruning": "LightZero's exact tictactoe player (bot_action_type="
    "'alpha_beta_pruning', a full-depth alpha-beta search)",
}


TREES = {
    "muzero": "MuZero (lzero.policy.muzero, C++ tree mz_tree)",
    "alphazero": "AlphaZero (lzero.policy.alphazero, C++ tree ctree_alphazero)",
}


class Record:
    def __init__(self, args):
        self.args = args
        self.collector = None
        self.evaluator = None
        self.t0 = None
        self.setup_s = None
        self.eval_s = 0.0
        self.curve = []
        self.last_eval_step = 0
        self.final = False
        self.last_returns = None
        self.train_iter = 0
        self.last_check = None

    def start(self):
        self.t0 = time.perf_counter()
        self.setup_s = self.t0 - START

    def wall(self):
        return 0.0 if self.t0 is None else time.perf_counter() - self.t0

    def out_of_budget(self):
        """Called once per collect-and-train iteration of train_muzero's loop, at its top."""
        steps = self.collector.envstep if self.collector is not None else 0
        now = self.wall()
        iteration_s = 0.0 if self.last_check is None else now - self.last_check
        self.last_check = now
        # End now if one more collect-and-train iteration would pass the wall budget.
        wall_over = self.args.max_wall_s is not None and now + iteration_s >= self.args.max_wall_s
        return steps >= self.args.max_env_steps or wall_over


def patch_lightzero(rec):
    """Subclass the collector, evaluator and evaluator's monitor that the training entry builds."""
    from ding.worker.collector.base_serial_evaluator import VectorEvalMonitor

    if rec.args.algo == "muzero":
        from lzero.worker import MuZeroCollector as Collector
        from lzero.worker import MuZeroEvaluator as Evaluator

        entry = importlib.import_module("lzero.entry.train_muzero")
        evaluator_module = importlib.import_module("lzero.worker.muzero_evaluator")
    else:
        from lzero.worker import AlphaZeroCollector as Collector
        from lzero.worker import AlphaZeroEvaluator as Evaluator

        entry = importlib.import_module("lzero.entry.train_alphazero")
        evaluator_module = importlib.import_module("lzero.worker.alphazero_evaluator")

    class RecordingMonitor(VectorEvalMonitor):
        def get_episode_return(self):
            returns = super().get_episode_return()
            rec.last_returns = [float(r) for r in np.asarray(returns, dtype=np.float64).ravel()]
            return returns

    class RecordingCollector(Collector):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            rec.collector = self

    class RecordingEvaluator(Evaluator):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            rec.evaluator = self
            if rec.args.algo == "alphazero":  # its loop starts next, with no evaluation first
                rec.start()

        def should_eval(self, train_iter):
            if rec.out_of_budget():
                rec.final = True
                return True
            if rec.args.eval_every > 0:
                return rec.collector.envstep - rec.last_eval_step >= rec.args.eval_every
            return super().should_eval(train_iter)

        def eval(self, save_ckpt_fn=None, train_iter=-1, envstep=-1, *a, **kw):
            if rec.t0 is None:  # train_muzero's evaluation of the untrained agent: training starts
                rec.start()
            began = rec.wall()
            rec.last_returns = None
            stop, info = super().eval(save_ckpt_fn, train_iter, envstep, *a, **kw)
            rec.eval_s += rec.wall() - began
            mean = float(np.mean(rec.last_returns)) if rec.last_returns else float("nan")
            worst = float(np.min(rec.last_returns)) if rec.last_returns else float("nan")
            rec.curve.append([int(envstep), round(began, 3), mean, worst])
            rec.last_eval_step = int(envstep)
            rec.train_iter = int(train_iter)
            print(
                f"[lightzero_run] eval env_steps={envstep} wall={began:.1f}s "
                f"mean_return={mean:.3f} returns={rec.last_returns}",
                file=sys.stderr,
                flush=True,
            )
            return bool(stop or rec.final), info

    evaluator_module.VectorEvalMonitor = RecordingMonitor
    # (train_muzero imports them as Collector and Evaluator, train_alphazero by their own names)
    swaps = [(Collector, RecordingCollector), (Evaluator, RecordingEvaluator)]
    for original, recording in swaps:
        names = [name for name, value in vars(entry).items() if value is original]
        assert len(names) == 1, f"{entry.__name__} names {original.__name__} {len(names)} times"
        setattr(entry, names[0], recording)
    return getattr(entry, f"train_{rec.args.algo}")


def evaluate_against(bot: str) -> None:
    """The tictactoe evaluator envs play `bot`; the collector envs keep the zoo's."""
    from zoo.board_games.tictactoe.envs.tictactoe_env import TicTacToeEnv

    make_evaluator_cfgs = TicTacToeEnv.create_evaluator_env_cfg

    def evaluator_cfgs(cfg):
        cfgs = make_evaluator_cfgs(cfg)
        for c in cfgs:
            c.bot_action_type = bot
        return cfgs

    TicTacToeEnv.create_evaluator_env_cfg = staticmethod(evaluator_cfgs)


def build_configs(args, exp_name):
    if args.env == "cartpole":
        module = "zoo.classic_control.cartpole.config.cartpole_muzero_config"
    else:
        module = f"zoo.board_games.tictactoe.config.tictactoe_{args.algo}_bot_mode_config"
    zoo = importlib.import_module(module)
    main_config = copy.deepcopy(zoo.main_config)
    create_config = copy.deepcopy(zoo.create_config)
    main_config.exp_name = exp_name
    main_config.policy.cuda = False
    main_config.policy.use_wandb = False
    create_config.env_manager.type = "base"
    main_config.env.stop_value = float("inf") if args.no_stop else args.target
    if args.eval_episodes is not None:
        main_config.env.n_evaluator_episode = args.eval_episodes
        main_config.env.evaluator_env_num = args.eval_episodes
        main_config.policy.evaluator_env_num = args.eval_episodes
    if args.env == "cartpole":
        main_config.env.env_id = args.env_id
    return module, main_config, create_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=["muzero", "alphazero"], default="muzero")
    parser.add_argument("--env", choices=["cartpole", "tictactoe"], required=True)
    parser.add_argument("--max-env-steps", type=int, required=True)
    parser.add_argument("--target", type=float, required=True, help="eval return to reach")
    parser.add_argument(
        "--target-on",
        choices=["mean", "worst"],
        default="mean",
        help="the evaluation's mean return reaches --target (LightZero's stop rule), or its "
        "lowest (tictactoe, --target 0: no game lost)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="env steps between evaluations; 0 keeps LightZero's eval_freq",
    )
    parser.add_argument(
        "--max-wall-s",
        type=float,
        default=None,
        help="end the run (after one last evaluation) past this many seconds",
    )
    parser.add_argument("--env-id", default="CartPole-v1", help="cartpole only (zoo: CartPole-v0)")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="episodes per evaluation (default: the zoo config's)",
    )
    parser.add_argument(
        "--no-stop", action="store_true", help="keep training after the target is reached"
    )
    parser.add_argument(
        "--eval-bot",
        choices=sorted(BOTS),
        default="v0",
        help="tictactoe: the evaluator envs' bot (the collector envs keep the zoo's v0)",
    )
    parser.add_argument("--keep-dir", action="store_true", help="keep LightZero's exp dir")
    args = parser.parse_args()
    if args.algo == "alphazero" and args.env != "tictactoe":
        parser.error("LightZero's AlphaZero runs on tictactoe here")
    if args.target_on == "worst" and not args.no_stop:
        parser.error("--target-on worst needs --no-stop (LightZero stops on the mean)")

    # LightZero and DI-engine log to stdout; keep stdout for the JSON line alone.
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)

    rec = Record(args)
    train = patch_lightzero(rec)
    if args.env == "tictactoe":
        evaluate_against(args.eval_bot)
    workdir = tempfile.mkdtemp(prefix=f"lightzero_{args.env}_")
    os.chdir(workdir)  # train_muzero writes ./<exp_name>/{log,ckpt,formatted_total_config.py}
    exp_name = f"{args.algo}_{args.env}_seed{args.seed}"
    module, main_config, create_config = build_configs(args, exp_name)
    n_eval = main_config.env.n_evaluator_episode
    env_id = main_config.env.get("env_id")
    max_episode_steps = None
    if args.env == "cartpole":
        import gymnasium

        max_episode_steps = gymnasium.spec(env_id).max_episode_steps
    policy = main_config.policy

    train([main_config, create_config], seed=args.seed, max_env_step=int(1e12))
    end = time.perf_counter()

    train_s = end - rec.t0
    env_steps = int(rec.collector.envstep)
    time_to_target = steps_to_target = None
    for steps, wall, mean, worst in rec.curve:
        if (mean if args.target_on == "mean" else worst) >= args.target:
            time_to_target, steps_to_target = wall, steps
            break
    stopped_by = "target" if time_to_target is not None else "other"
    if rec.final:
        stopped_by = "budget"
    result = {
        "library": "LightZero 0.2.0",
        "algorithm": f"{TREES[args.algo]}, torch {torch.__version__}, CPU, 1 thread",
        "env": args.env,
        "env_id": env_id,
        "max_episode_steps": max_episode_steps,
        "bot": BOTS["v0"] if args.env == "tictactoe" else None,
        "eval_bot": BOTS[args.eval_bot] if args.env == "tictactoe" else None,
        "env_step_unit": "agent move + bot reply" if args.env == "tictactoe" else "env step",
        "config": module.replace(".", "/") + ".py (the wheel's zoo), cuda=False, env_manager=base",
        "seed": args.seed,
        "target": args.target,
        "setup_s": round(rec.setup_s, 3),
        "compile_s": 0,
        "train_s": round(train_s, 3),
        "eval_s": round(rec.eval_s, 3),
        "env_steps": env_steps,
        "steps_per_s": round(env_steps / train_s, 3),
        "steps_per_s_excl_eval": round(env_steps / (train_s - rec.eval_s), 3),
        "learner_iters": rec.train_iter,
        "updates_per_s": round(rec.train_iter / train_s, 3),
        "eval_episodes": n_eval,
        "num_simulations": (
            policy.mcts.num_simulations if args.algo == "alphazero" else policy.num_simulations
        ),
        "collector_env_num": policy.collector_env_num,
        "n_episode_per_collect": policy.n_episode,
        "update_per_collect": policy.update_per_collect,
        "batch_size": policy.batch_size,
        "curve": rec.curve,
        "time_to_target_s": time_to_target,
        "steps_to_target": steps_to_target,
        "final_return": rec.curve[-1][2] if rec.curve else None,
        "stopped_by": stopped_by,
    }
    if not args.keep_dir:
        shutil.rmtree(workdir, ignore_errors=True)
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()
    sys.stderr.flush()
    os._exit(0)  # skip DI-engine's __del__ teardown, which may print after the JSON line


if __name__ == "__main__":
    main()
