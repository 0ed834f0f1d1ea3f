"""The `bellman` command line: train, sweep, eval, solve, compare, list.

    bellman train ALGO --env ENV [--steps N] [--seeds K] [--out DIR] [--backend compiled|gymnasium]
                  [--<any config field> VALUE ...] [--resume RUN_DIR [--trust-env]]
    bellman sweep ALGO --env ENV (--grid NAME=V1,V2,... ... | --random N --range NAME=LOW:HIGH ...)
                  [--seeds K] [--steps N] [--out DIR] [--<any config field> VALUE ...]
    bellman eval RUN_DIR [--episodes N] [--video] [--json] [--trust-env]
                 [--params-grid NAME=LOW:HIGH:N,...]
    bellman identify RUN_DIR --real NAME=VALUE,... --params NAME,... [--episodes N] [--json]
    bellman solve ENV [--method value-iteration|policy-iteration|policy-evaluation|...]
                  [--iterations N] [--show 1,2,3,10] [--json] [--plot] [--objective reward|cost]
    bellman compare RUN_OR_SWEEP_DIR... [--labels A B ...] [--out DIR] [--json] [--reps N]
                    [--normalize]
    bellman list [algos|envs]

Every field of an algorithm's config is a flag (`--num-envs 8`), with the field's docstring as its
help. Mistakes get one sentence on stderr and a non-zero exit: 2 for bad input, 1 for a failed run,
and for a run stopped by a signal the shell's code for it, 130 after SIGINT and 143 after SIGTERM.
A training run stops at its next chunk boundary after either signal and saves a checkpoint first,
so it can be resumed. `--debug`, anywhere on the line, adds the full traceback to an error;
warnings (a damaged checkpoint skipped, say) are `bellman: warning:` lines. A run directory whose
env is `module:Class` is opened (its module imported) only with `--trust-env`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
import traceback
import typing
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from bellman import algos, jax_setup
from bellman import config as cfg
from bellman._version import __version__
from bellman.errors import (
    BellmanError,
    BellmanWarning,
    ConfigError,
    EnvError,
    MDPError,
    UnknownNameError,
    UntrustedCodeError,
    closest,
)
from bellman.experiment.settings import RunSettings

USAGE_ERRORS = (ConfigError, UnknownNameError, EnvError, MDPError, UntrustedCodeError)


class UsageError(BellmanError):
    pass


class Terminated(BaseException):
    """SIGTERM, outside a training loop (which saves a checkpoint first and stops on its own):
    ends the command as SIGINT's KeyboardInterrupt does."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake raises one sentence instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: Sequence[str] = (),
    title: str = "",
    defaults: dict[str, Any] | None = None,
    presets: dict[str, dict[str, Any]] | None = None,
    helps: dict[str, str] | None = None,
) -> None:
    """One flag per field of `cls`, with the field's docstring as help; defaults are suppressed
    so that only the flags given become overrides. `defaults` replaces the class's defaults in
    the help (an algorithm name that presets fields); `presets` (name -> fields) adds the values
    each preset gives a field; `helps` replaces a field's help."""
    group = parser.add_argument_group(title or cls.__name__)
    docs = {**cfg.field_docs(cls), **(helps or {})}
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        annotation = cfg.field_types(cls)[field.name]
        default = field.default if field.default is not dataclasses.MISSING else None
        default = (defaults or {}).get(field.name, default)
        by_preset = {
            name: fields[field.name]
            for name, fields in (presets or {}).items()
            if field.name in fields
        }
        help_text = _help(docs.get(field.name, ""), default, by_preset).replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS}
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(typing.get_args(annotation))
            kwargs["metavar"] = "{" + ",".join(map(str, kwargs["choices"])) + "}"
        elif origin is tuple:
            kwargs["nargs"] = "*"  # an empty tuple is a setting too (es: a linear policy)
            kwargs["type"] = args[0]
            kwargs["metavar"] = args[0].__name__.upper()
        elif args and origin is not None:  # Optional[X]
            kwargs["type"] = args[0]
            kwargs["metavar"] = field.name.upper() if args[0] is str else args[0].__name__.upper()
        elif annotation is str:
            kwargs["type"] = str
            kwargs["metavar"] = field.name.upper()
        else:
            kwargs["type"] = annotation
            kwargs["metavar"] = getattr(annotation, "__name__", "VALUE").upper()
        group.add_argument(_flag(field.name), help=help_text, **kwargs)


def _help(doc: str, default: Any, by_preset: dict[str, Any]) -> str:
    """A field's help: its docstring, its default (unless the docstring says it, or there is
    none) and the values presets give it."""
    notes = []
    if default is not None and "default" not in doc.lower():
        notes.append(f"default: {_show(default)}")
    if by_preset:
        values = ", ".join(f"{name}: {_show(value)}" for name, value in by_preset.items())
        notes.append(f"preset {values}")
    return f"{doc} ({'; '.join(notes)})" if notes else doc


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


def build_parser() -> Parser:
    parser = Parser(
        prog="bellman",
        description="Deep reinforcement learning in JAX: train, evaluate, solve, list.",
    )
    parser.add_argument("--version", action="version", version=f"bellman {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the full traceback (with its causes) before the sentence; "
        "accepted anywhere on the command line",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train an algorithm on an environment",
        description="Train ALGO on an environment; prints the run directory on the last line.",
    )
    train_algos = train.add_subparsers(dest="algo", metavar="ALGO", parser_class=Parser)
    train_algos.required = True
    for info in algos.ALGOS.values():
        sub = train_algos.add_parser(
            info.name,
            help=info.summary,
            description=f"Train {info.summary}.",
        )
        presets = info_presets(info)
        add_dataclass_flags(sub, RunSettings, title="run", helps=run_helps(info, presets))
        sub.add_argument(
            "--out", metavar="DIR", default=None, help="run directory (default: runs/ALGO-ENV-TIME)"
        )
        sub.add_argument(
            "--resume",
            metavar="RUN_DIR",
            default=None,
            help="continue a stopped or killed run from its newest checkpoint, with its settings; "
            "with --steps N, train a run (finished or not) on up to N steps",
        )
        sub.add_argument(
            "--trust-env",
            action="store_true",
            help="with --resume: allow importing the module of a run's module:Class env (a run "
            "directory is data; its code runs only when you say so)",
        )
        sub.add_argument("--quiet", action="store_true", help="no progress bar or result table")
        sub.add_argument(
            "--json",
            action="store_true",
            help="print the summary as one JSON object (with run_dir) instead of the table",
        )
        sub.add_argument(
            "--config",
            metavar="FILE",
            default=None,
            help="settings from a JSON or YAML file (flat, or a run's own config.json to rerun "
            "its exact settings); flags given as well override it",
        )
        sub.add_argument(
            "--seed-groups",
            type=int,
            default=None,
            metavar="G",
            help="train the seeds as G groups of SEEDS/G (one after another, or with --ray on "
            "a Ray cluster's nodes) and merge them into one run directory (compiled backend)",
        )
        sub.add_argument(
            "--ray",
            default=None,
            metavar="ADDRESS",
            help="with --seed-groups: train the groups as Ray Tune trials on the Ray cluster at "
            "ADDRESS (auto: the one `ray start` started here); needs bellman[ray]",
        )
        add_dataclass_flags(
            sub,
            info.module.Config,
            title=f"{info.name} config",
            defaults=info.defaults,
            presets=presets,
        )

    add_sweep_parser(commands)

    ev = commands.add_parser(
        "eval",
        help="evaluate a trained run's greedy policy",
        description="Evaluate the greedy policy of every seed of a run on fresh episodes.",
    )
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--episodes", type=int, default=20, help="episodes per seed (default: 20)")
    ev.add_argument(
        "--backend",
        choices=["compiled", "gymnasium"],
        default=None,
        help="evaluate in the JAX env or in its gymnasium twin (default: the training backend)",
    )
    ev.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the evaluation episodes, 0 to 4,294,967,295 (default: 0)",
    )
    ev.add_argument("--video", action="store_true", help="record one episode to RUN_DIR/videos/")
    ev.add_argument(
        "--params-grid",
        default=None,
        metavar="NAME=LOW:HIGH:N,...",
        help="a robustness map: evaluate over a grid of one or two gymnax parameters (one "
        "program for the whole grid) and write its heat map, CSV and JSON to RUN_DIR/robustness/",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument(
        "--checkpoint",
        choices=["newest", "best"],
        default="newest",
        help="the newest checkpoint, or the best one the KeepBest callback kept (default: newest)",
    )
    ev.add_argument(
        "--trust-env",
        action="store_true",
        help="allow importing the module of the run's module:Class env (a run directory is "
        "data; its code runs only when you say so)",
    )

    ident = commands.add_parser(
        "identify",
        help="estimate a gymnax env's parameters from a policy's episodes in the real system",
        description="System identification: record episodes of a run's policy (seed 0, with "
        "exploration noise) in its env with the parameters --real, which the fit is not told, "
        "and fit the parameters --params to the one-step prediction error of the next "
        "observation: by gradient descent through a gymnax env's dynamics, or by CMA-ES for a "
        "MuJoCo env on the gymnasium backend (replaying the recorded MuJoCo states). Writes "
        "RUN_DIR/identify/*.json and prints the estimate as --env-params (or --randomize) "
        "takes it.",
    )
    ident.add_argument("run_dir", metavar="RUN_DIR")
    ident.add_argument(
        "--real",
        required=True,
        metavar="NAME=VALUE,...",
        help="the real system's parameters (as --env-params takes them; a MuJoCo env on the "
        "gymnasium backend: mass, friction, damping, gain as factors of the model's values)",
    )
    ident.add_argument(
        "--params", required=True, metavar="NAME,...", help="the parameters to estimate"
    )
    ident.add_argument("--episodes", type=int, default=10, help="episodes recorded (default: 10)")
    ident.add_argument(
        "--noise",
        type=float,
        default=0.3,
        help="exploration: Gaussian noise of NOISE x half the action range, or the probability "
        "of a random discrete action (default: 0.3)",
    )
    ident.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="Adam steps of the fit (default: 2000), or CMA-ES generations for a MuJoCo env "
        "(default: 30)",
    )
    ident.add_argument(
        "--learning-rate", type=float, default=0.05, help="Adam's step size (default: 0.05)"
    )
    ident.add_argument("--seed", type=int, default=0, help="seed of the recorded episodes")
    ident.add_argument("--json", action="store_true", help="print one JSON object")

    add_solve_parser(commands)
    add_compare_parser(commands)
    add_arena_parser(commands)

    pl = commands.add_parser(
        "play",
        help="play a board game against a trained agent in the terminal",
        description="Play against the agent of a run of alphazero or muzero on tic_tac_toe, "
        "connect_four, othello or go_9x9: the board is drawn in text, you type your moves "
        "(a cell 1-9, a column 1-7, a point such as D4, or pass).",
    )
    pl.add_argument("run_dir", metavar="RUN_DIR")
    side = pl.add_mutually_exclusive_group()
    side.add_argument(
        "--first",
        dest="first",
        action="store_true",
        default=True,
        help="you move first (the default)",
    )
    side.add_argument("--second", dest="first", action="store_false", help="the agent moves first")
    pl.add_argument(
        "--simulations",
        type=int,
        default=None,
        help="simulations of the agent's search (default: the run's eval_simulations)",
    )
    pl.add_argument("--seed-index", type=int, default=0, help="which seed of the run plays")

    add_collect_parser(commands)

    ls = commands.add_parser("list", help="list algorithms, environments or datasets")
    ls.add_argument("what", nargs="?", choices=["algos", "envs", "datasets"], default=None)
    return parser


def add_collect_parser(commands: Any) -> None:
    co = commands.add_parser(
        "collect",
        help="record a trained run's policy into a Minari dataset (for the offline algorithms)",
        description="Record episodes of a trained run's policy into a new Minari dataset at "
        "--out (readable with minari.load_dataset), with the random policy's and the expert's "
        "mean returns for normalised scores; prints the dataset's directory on the last line.",
    )
    co.add_argument("run_dir", metavar="RUN_DIR")
    co.add_argument("--episodes", type=int, default=10, help="episodes to record (default: 10)")
    co.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="the new dataset's directory; its name is the Minari id (-v0 is added unless it "
        "ends in -v<N>)",
    )
    behaviour = co.add_mutually_exclusive_group()
    behaviour.add_argument(
        "--epsilon",
        type=float,
        default=0.0,
        help="act uniformly at random with this probability, else greedily",
    )
    behaviour.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="add Gaussian noise of this many half-widths of the action box to the greedy action",
    )
    behaviour.add_argument(
        "--stochastic",
        action="store_true",
        help="sample the run's own behaviour policy (SAC's Gaussian, PPO's distribution, ...)",
    )
    behaviour.add_argument(
        "--random", action="store_true", help="the uniformly random policy (D4RL's random level)"
    )
    behaviour.add_argument(
        "--replay",
        action="store_true",
        help="the run's replay memory at its newest checkpoint instead of new episodes "
        "(D4RL's medium-replay); --episodes is then ignored",
    )
    co.add_argument(
        "--expert",
        metavar="RUN_DIR",
        default=None,
        help="the run whose greedy return is the dataset's expert reference (default: RUN_DIR)",
    )
    co.add_argument(
        "--reference-episodes",
        type=int,
        default=100,
        help="episodes of the random policy and of the expert for the reference returns "
        "(default: 100)",
    )
    co.add_argument("--seed-index", type=int, default=0, help="which seed of the run plays")
    co.add_argument("--seed", type=int, default=0, help="seed of the episodes (default: 0)")
    co.add_argument(
        "--trust-env",
        action="store_true",
        help="allow importing the module of the run's module:Class env",
    )
    co.add_argument("--json", action="store_true", help="print one JSON object")


def info_presets(info: algos.AlgoInfo) -> dict[str, dict[str, Any]]:
    """The algorithm's presets: name -> the config fields it sets."""
    return {name: dict(fields) for name, fields in info.presets.items()}


def run_helps(
    info: algos.AlgoInfo,
    presets: dict[str, dict[str, Any]],
    required: str = "Required (unless --resume or --config gives it).",
) -> dict[str, str]:
    """Help texts of run settings that depend on the algorithm."""
    env_doc = cfg.field_docs(RunSettings)["env"]
    helps = {"env": f"{required} {env_doc}"}
    if presets:
        helps["preset"] = (
            f"A named set of {info.name}'s settings, applied before the flags given: one of "
            f"{', '.join(presets)} (the values each sets are shown with the flags below); "
            "default: the one the algorithm picks for the env, if any."
        )
    else:
        helps["preset"] = f"{info.name} has no presets."
    return helps


def add_solve_parser(commands: Any) -> None:
    from bellman.algos import dp

    sv = commands.add_parser(
        "solve",
        help="solve a finite MDP exactly (value iteration, policy iteration, ...)",
        description="Plan on a finite environment whose model is known: bellman's grid worlds "
        "(Maze-v0, GridWorld-v0, ...), gymnasium's toy-text envs, or any env with a transition "
        "table P[s][a]. Prints V as a grid and the greedy policy as arrows.",
    )
    sv.add_argument("env", metavar="ENV")
    sv.add_argument(
        "--method",
        default="value-iteration",
        help=f"one of {', '.join(dp.METHODS)} (default: value-iteration)",
    )
    sv.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="run exactly N sweeps (improvement steps for policy-iteration) instead of "
        "stopping at convergence; N from 0 to 1,000,000",
    )
    sv.add_argument(
        "--show",
        metavar="K,K,...",
        default="",
        help="also print V_k after these iterations, e.g. 1,2,3,10 (V_0 is where it starts)",
    )
    sv.add_argument(
        "--tol",
        type=float,
        default=dp.DEFAULT_TOL,
        help="stop when no value "
        f"changes by more than this in a sweep (default: {dp.DEFAULT_TOL:g})",
    )
    sv.add_argument(
        "--in-place",
        action="store_true",
        help="in-place (Gauss-Seidel) sweeps for policy-evaluation",
    )
    sv.add_argument("--gamma", type=float, default=None, help="discount (default: the env's)")
    sv.add_argument(
        "--objective",
        choices=["reward", "cost"],
        default=None,
        help="maximise rewards or minimise costs (= minus rewards); values are reported in this "
        "convention (default: the env's own, cost for Maze-v0)",
    )
    sv.add_argument("--json", action="store_true", help="print one JSON object")
    sv.add_argument(
        "--plot",
        action="store_true",
        help="write a heat map of V with the policy (PNG) and, for grid worlds, an animation "
        "over the iterations (GIF)",
    )
    sv.add_argument("--out", metavar="DIR", default=".", help="where --plot writes (default: .)")


def add_sweep_parser(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="train many settings of an algorithm, vmapped in as few programs as they allow",
        description="Train ALGO with every setting of a grid (or N settings drawn from ranges), "
        "SEEDS seeds each. Settings that differ only in continuous values (learning rates, "
        "gamma, coefficients: the float fields) run as one compiled program; each other value "
        "of a structural setting (sizes, counts, switches) is a program of its own. Writes a "
        "sweep directory: a run directory per setting, sweep.json and sweep.csv (final returns, "
        "IQM with a 95% bootstrap interval, area under the learning curve) and sweep.png; the "
        "same command again resumes a killed sweep. Prints the sweep directory on the last line. "
        "See docs/sweeps.md.",
    )
    sweep_algos = sweep.add_subparsers(dest="algo", metavar="ALGO", parser_class=Parser)
    sweep_algos.required = True
    for info in algos.ALGOS.values():
        sub = sweep_algos.add_parser(
            info.name, help=info.summary, description=f"Sweep {info.summary}."
        )
        sub.add_argument(
            "--grid",
            action="append",
            default=[],
            metavar="NAME=V1,V2,...",
            help="a setting and its values; several --grid flags make their product",
        )
        sub.add_argument(
            "--random",
            type=int,
            default=None,
            metavar="N",
            help="draw N settings from the --range flags (log-uniform for a positive range "
            "spanning 10x or more); with --grid, N draws for each grid point",
        )
        sub.add_argument(
            "--range",
            action="append",
            default=[],
            metavar="NAME=LOW:HIGH",
            help="a numeric setting's range for --random or --search",
        )
        sub.add_argument(
            "--search",
            choices=["optuna"],
            default=None,
            help="search the --range flags (and the --grid values, as choices) with Optuna's "
            "TPE sampler, pruning trials from their evaluations during training",
        )
        sub.add_argument(
            "--trials", type=int, default=None, metavar="N", help="trials of --search in all"
        )
        sub.add_argument(
            "--batch",
            type=int,
            default=None,
            metavar="K",
            help="trials asked at once and trained side by side (default: 8)",
        )
        sub.add_argument(
            "--sampler",
            choices=["tpe", "random"],
            default=None,
            help="Optuna's sampler for --search (default: tpe)",
        )
        sub.add_argument(
            "--pruner",
            choices=["median", "none"],
            default=None,
            help="stop --search trials whose best evaluation so far is below the median of "
            "earlier trials' at that step, after 5 trials and a third of the run (default: "
            "median)",
        )
        sub.add_argument(
            "--storage",
            default=None,
            metavar="URL",
            help="Optuna's storage, shared by every process working on the study (default: "
            "sqlite in the sweep directory)",
        )
        sub.add_argument(
            "--study", default=None, metavar="NAME", help="the study's name (default: ALGO-ENV)"
        )
        sub.add_argument(
            "--ray",
            default=None,
            metavar="ADDRESS",
            help="run the groups as Ray Tune trials on the Ray cluster at ADDRESS (auto: the one "
            "`ray start` started on this machine); needs bellman[ray], see docs/sweeps.md",
        )
        sub.add_argument(
            "--ray-cpus",
            type=float,
            default=None,
            metavar="N",
            help="CPUs per group with --ray (default: 1); its seeds shard over that many devices",
        )
        sub.add_argument(
            "--ray-gpus",
            type=float,
            default=None,
            metavar="N",
            help="GPUs per group with --ray (default: 0; give 1 on GPU nodes)",
        )
        presets = info_presets(info)
        helps = run_helps(info, presets, required="Required.")
        add_dataclass_flags(sub, RunSettings, title="run", helps=helps)
        sub.add_argument(
            "--out",
            metavar="DIR",
            default=None,
            help="sweep directory (default: runs/sweep-ALGO-ENV-TIME); an existing one of the "
            "same sweep is resumed",
        )
        sub.add_argument("--quiet", action="store_true", help="no progress bars or result table")
        sub.add_argument("--json", action="store_true", help="print the table as one JSON object")
        add_dataclass_flags(
            sub,
            info.module.Config,
            title=f"{info.name} config (the same for every setting; --grid and --range vary)",
            defaults=info.defaults,
            presets=presets,
        )


def cmd_sweep(args: argparse.Namespace) -> int:
    from bellman.experiment import sweep as sweeping

    info = algos.get(args.algo)
    config_names = {f.name for f in dataclasses.fields(info.module.Config)}
    setting_names = {f.name for f in dataclasses.fields(RunSettings)}
    given = {k: v for k, v in vars(args).items() if k in config_names | setting_names}
    if "env" not in given:
        raise UsageError("the --env flag is required (see: bellman list envs)")
    settings = {k: v for k, v in given.items() if k in setting_names}
    fixed = {k: v for k, v in given.items() if k in config_names}
    env = settings.pop("env")
    progress = not args.quiet
    searching = {
        "trials": args.trials,
        "batch": args.batch,
        "storage": args.storage,
        "study": args.study,
    }
    given_search = sorted(k for k, v in searching.items() if v is not None)
    if args.search is None and given_search:
        raise UsageError(f"{', '.join(map(_flag, given_search))} apply to --search optuna")
    if args.ray is None and (args.ray_cpus is not None or args.ray_gpus is not None):
        raise UsageError("--ray-cpus and --ray-gpus apply to --ray ADDRESS")
    if args.ray is not None and args.search is not None:
        raise UsageError(
            "--ray runs a grid or random sweep's groups; --search runs in this process (start "
            "more processes on the same --storage to search in parallel)"
        )
    result: Any
    if args.search is not None:
        from bellman.experiment import search as searching_module

        if args.trials is None:
            raise UsageError("--search needs --trials N (how many trials in all)")
        if args.random is not None:
            raise UsageError("--random draws settings at random; --search chooses them: drop one")
        found = searching_module.search(
            info.name,
            env,
            trials=args.trials,
            ranges=args.range,
            grid=args.grid,
            batch=args.batch or searching_module.DEFAULT_BATCH,
            sampler=args.sampler or "tpe",
            pruner=args.pruner or "median",
            storage=args.storage,
            study=args.study,
            out=args.out,
            progress=progress,
            **settings,
            **fixed,
        )
        if not args.json and progress:
            counts = found.trials or {}
            print(
                f"{sum(counts.values())} trials: {counts.get('complete', 0)} complete, "
                f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed; best: "
                f"{found.best_value:.2f} with {found.best_values}"
            )
        result = found
    else:
        result = sweeping.sweep(
            info.name,
            env,
            grid=args.grid,
            random=args.random,
            ranges=args.range,
            out=args.out,
            progress=progress,
            ray=args.ray,
            ray_cpus=1.0 if args.ray_cpus is None else args.ray_cpus,
            ray_gpus=0.0 if args.ray_gpus is None else args.ray_gpus,
            **settings,
            **fixed,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "sweep_dir": str(result.path),
                    "groups": result.groups,
                    "wall_s": result.wall_s,
                    "table": result.rows,
                }
            )
        )
        return 0
    if progress:
        print_sweep(result)
    print(result.path)
    return 0


def print_sweep(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"{len(result.rows)} settings, {result.groups} program(s), "
        f"{result.wall_s:.1f} s; best first"
    )
    table.add_column("setting", overflow="fold")
    table.add_column("mean", justify="right")
    table.add_column("IQM [95% bootstrap]", justify="right")
    table.add_column("area under curve", justify="right")
    rows = sorted(result.rows, key=lambda r: -r["iqm"] if r["iqm"] == r["iqm"] else float("inf"))
    for row in rows:
        iqm = (
            "diverged"
            if row["diverged"]
            else (f"{row['iqm']:.1f} [{row['iqm_low']:.1f}, {row['iqm_high']:.1f}]")
        )
        table.add_row(row["label"], f"{row['mean']:.1f}", iqm, f"{row['curve_area']:.1f}")
    console.print(table)


def add_arena_parser(commands: Any) -> None:
    ar = commands.add_parser(
        "arena",
        help="two players of a board game against each other, or a run's Elo ladder",
        description="Play A against B (run directories of alphazero or muzero on a game, or "
        "built-in players: "
        "random, minimax (tic-tac-toe), alphabeta[:DEPTH] (Connect Four), mcts[:SIMULATIONS] "
        "(pure MCTS with random rollouts)) for --games games side by side, colours alternated, "
        "and report A's wins, draws and losses with 95% intervals. With --ladder, rate a run's "
        "networks at every checkpoint (RUN_DIR/snapshots) and the random player on one Elo "
        "scale; with --snapshots, play B with A's network at every checkpoint (the learning "
        "curve against B).",
    )
    ar.add_argument("a", metavar="A", help="a run directory or a built-in player")
    ar.add_argument("b", metavar="B", nargs="?", default=None, help="the other player")
    ar.add_argument("--games", type=int, default=100, help="games to play (default: 100)")
    ar.add_argument(
        "--env",
        default=None,
        help="the game, when both players are built-in (default: the runs' game)",
    )
    ar.add_argument(
        "--simulations",
        type=int,
        default=None,
        help="simulations of a run's search (default: the run's eval_simulations)",
    )
    ar.add_argument(
        "--seed-index", type=int, default=0, help="which seed of a run plays (default: 0)"
    )
    ar.add_argument("--seed", type=int, default=0, help="random seed of the games (default: 0)")
    ar.add_argument(
        "--ladder",
        action="store_true",
        help="A is a run directory: the Elo ladder of its snapshots (no B)",
    )
    ar.add_argument(
        "--snapshots",
        action="store_true",
        help="A is a run directory: its network at every checkpoint plays B",
    )
    ar.add_argument("--json", action="store_true", help="print one JSON object")


def add_compare_parser(commands: Any) -> None:
    from bellman import stats
    from bellman.experiment import compare

    cp = commands.add_parser(
        "compare",
        help="compare finished runs and sweeps: IQM, bootstrap intervals, P(X > Y)",
        description="Compare methods by the final greedy returns of all their seeds, with the "
        "statistics of Agarwal et al. (2021): mean, median and interquartile mean with 95% "
        "stratified bootstrap intervals, the optimality gap, the probability that one method's "
        "run beats another's, and performance profiles (see docs/sweeps.md). A run directory "
        "is one method (labelled with its algo); a sweep directory gives one method per "
        "setting. Runs of one method on several envs are its tasks; only the envs every "
        "method ran on are compared.",
    )
    cp.add_argument("dirs", nargs="+", metavar="RUN_OR_SWEEP_DIR")
    cp.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        default=None,
        help="one label per directory, in order, after the directories: a run's method name, "
        "or the prefix of a sweep's settings (the same label for two runs pools their seeds)",
    )
    cp.add_argument(
        "--out",
        metavar="DIR",
        default="compare",
        help=f"where {compare.RESULT}, {compare.PROFILE_PLOT} and {compare.INTERVALS_PLOT} "
        "are written (default: ./compare)",
    )
    cp.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    cp.add_argument(
        "--reps",
        type=int,
        default=stats.REPS,
        help=f"bootstrap resamples, 1 to {compare.MAX_REPS:,} (default: {stats.REPS:,}; more "
        "steadies the interval ends)",
    )
    cp.add_argument(
        "--normalize",
        action="store_true",
        help="score (return - random) / (reference - random) per env, so that envs can be "
        f"aggregated; for envs with a known range: {', '.join(stats.SCORE_RANGES)}",
    )


def _check_algo_name(argv: Sequence[str]) -> None:
    """Name the closest algorithms for `bellman train NAME` with an unknown NAME."""
    if (
        len(argv) >= 2
        and argv[0] in ("train", "sweep")
        and not argv[1].startswith("-")
        and argv[1].lower() not in algos.ALGOS
    ):
        raise UnknownNameError(f"unknown algorithm '{argv[1]}'" + closest(argv[1], algos.ALGOS))


def cmd_train(args: argparse.Namespace) -> int:
    from bellman.experiment import train as training

    info = algos.get(args.algo)
    config_names = {f.name for f in dataclasses.fields(info.module.Config)}
    setting_names = {f.name for f in dataclasses.fields(RunSettings)}
    given = {k: v for k, v in vars(args).items() if k in config_names | setting_names}
    progress = not args.quiet
    if progress:
        from bellman.experiment.progress import line_interval

        line_interval()  # a bad BELLMAN_PROGRESS_INTERVAL is named before the run starts
    if args.trust_env and not args.resume:
        raise UsageError("--trust-env applies to --resume (a new run trusts the env it is given)")
    if args.resume and (args.seed_groups is not None or args.ray is not None):
        raise UsageError(
            "--seed-groups trains a new run; to continue a merged one: --resume RUN_DIR alone"
        )
    if args.resume:
        steps = given.pop("steps", None)
        if given or args.out or args.config:
            extra = (
                sorted(given) + (["out"] if args.out else []) + (["config"] if args.config else [])
            )
            raise UsageError(
                "--resume continues a run with its saved settings (and --steps N trains it up "
                f"to N steps); drop {', '.join(map(_flag, extra))}"
            )
        run = training.resume(
            args.resume,
            algo=args.algo,
            progress=progress,
            trust_env=args.trust_env,
            steps=steps,
        )
    else:
        if args.config:
            given = {**settings_file(args.config, info.name, config_names | setting_names), **given}
        if "env" not in given:
            raise UsageError("the --env flag is required (see: bellman list envs)")
        settings = {k: v for k, v in given.items() if k in setting_names}
        overrides = {k: v for k, v in given.items() if k in config_names}
        env = settings.pop("env")
        if args.seed_groups is not None:
            from bellman.experiment import seedgroups

            seeds = settings.pop("seeds", None) or 1
            summary = seedgroups.train_split(
                info.name,
                env,
                seeds=seeds,
                groups=args.seed_groups,
                ray=args.ray,
                out=args.out,
                progress=progress,
                **settings,
                **overrides,
            )
            if args.json:
                print(json.dumps(summary))
                return 0
            if progress:
                print_result(summary)
            print(summary["run_dir"])
            return 0
        if args.ray is not None:
            raise UsageError("--ray applies to --seed-groups G (or to bellman sweep)")
        run = training.train(
            info.name, env, out=args.out, progress=progress, **settings, **overrides
        )
    if args.json:
        print(json.dumps(run.summary))
        return 0
    if progress:
        print_result(run.summary)
    print(run.run_dir)
    return 0


def settings_file(path: str, algo: str, names: set[str]) -> dict[str, Any]:
    """The settings a `--config FILE` gives: a JSON or YAML object of run settings and config
    fields, flat (`{"env": "CartPole-v1", "learning_rate": 0.001}`) or as a run's own config.json
    lays them out (`settings` and `config` sections), to rerun exact settings."""
    from pathlib import Path

    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read --config {path}: {exc.strerror}") from None
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:  # yaml.YAMLError is a ValueError too
        raise UsageError(f"--config {path} does not parse: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"--config {path} must hold an object of settings, not {type(data).__name__}"
        )
    if data.get("algo", algo) != algo:
        raise UsageError(f"--config {path} is for {data['algo']}, not {algo}")
    if isinstance(data.get("settings"), dict) or isinstance(data.get("config"), dict):
        data = {**data.get("settings", {}), **data.get("config", {})}
    data.pop("algo", None)
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(
            f"--config {path} has setting(s) {algo} does not know: {', '.join(unknown)}"
            + closest(unknown[0], names)
        )
    return data


def print_result(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    info = algos.ALGOS.get(summary["algo"])
    what = "gradient steps" if info is not None and info.family == "offline" else "env steps"
    console.print(
        f"[bold]{summary['algo']}[/bold] on [bold]{summary['env']}[/bold] "
        f"({summary['backend']} backend), {summary['steps']:,} {what} per seed"
    )
    table = Table()
    table.add_column("seed", justify="right")
    table.add_column(f"greedy return ({summary['eval_episodes']} episodes)", justify="right")
    for i, value in enumerate(summary["final_return_per_seed"]):
        table.add_row(str(i), f"{value:.2f}")
    if summary["seeds"] > 1:
        table.add_row(
            "mean",
            f"{summary['final_return_mean']:.2f} ± {summary['final_return_std']:.2f}",
            style="bold",
        )
    console.print(table)
    console.print(
        f"wall {summary['wall_s']:.1f} s (compile {summary['compile_s']:.1f} s, "
        f"train {summary['train_s']:.1f} s), {summary['steps_per_s']:,.0f} {what}/s "
        f"over all seeds"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from bellman.experiment.evaluate import evaluate_run

    if args.params_grid is not None:
        return robustness_map(args)

    result = evaluate_run(
        args.run_dir,
        episodes=args.episodes,
        backend=args.backend,
        video=args.video,
        seed=args.seed,
        trust_env=args.trust_env,
        checkpoint=None if args.checkpoint == "newest" else args.checkpoint,
    )
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['algo']} on {result['env']} ({result['backend']}): greedy return "
        f"{result['return_mean']:.2f} ± {result['return_std']:.2f} over {result['seeds']} "
        f"seed(s), {result['episodes']} episodes each"
    )
    for i, value in enumerate(result["return_per_seed"]):
        print(f"  seed {i}: {value:.2f}")
    if result["video"]:
        print(f"video: {result['video']}")
    return 0


def robustness_map(args: argparse.Namespace) -> int:
    import numpy as np

    from bellman.experiment.robustness import robustness_map

    if args.video or args.backend == "gymnasium":
        raise UsageError("--params-grid evaluates in the compiled env, without --video")
    result = robustness_map(
        args.run_dir,
        args.params_grid,
        episodes=args.episodes,
        seed=args.seed,
        trust_env=args.trust_env,
        checkpoint=None if args.checkpoint == "newest" else args.checkpoint,
    )
    if args.json:
        print(json.dumps(result))
        return 0
    names = list(result["grid"])
    print(
        f"{result['algo']} on {result['env']}: nominal greedy return "
        f"{result['nominal_return']:.2f}; {100 * result['held_fraction']:.1f}% of "
        f"{np.asarray(result['held']).size} cells hold (return >= nominal - 10% of its size)"
    )
    mean = np.asarray(result["return_mean"])
    if mean.ndim == 1:
        mean = mean[:, None]
    first = result["grid"][names[0]]
    second = result["grid"][names[1]] if len(names) > 1 else [None]
    header = f"{names[0]} \\ {names[1]}" if len(names) > 1 else names[0]
    print(f"{header:>16}" + "".join(f"{y:>10.3g}" if y is not None else "" for y in second))
    for i, x in enumerate(first):
        print(f"{x:>16.4g}" + "".join(f"{mean[i, j]:>10.1f}" for j in range(mean.shape[1])))
    for path in result["files"]:
        print(path)
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    from bellman.experiment.identify import identify

    result = identify(
        args.run_dir,
        args.real,
        args.params,
        episodes=args.episodes,
        noise=args.noise,
        iterations=args.iterations,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['env']}: {result['transitions']:,} transitions of {result['episodes']} "
        f"episodes; one-step loss {result['loss'][0]:.3g} -> {result['loss'][-1]:.3g}"
    )
    for name, value in result["estimate"].items():
        error = result["relative_error"][name]
        shown = "" if error is None else f", error {100 * error:.2f}%"
        print(
            f"  {name}: {value:.6g} (simulator {result['start'][name]:.6g}, real "
            f"{result['true'][name]:.6g}{shown})"
        )
    if result["env_params"] is not None:
        print(f"--env-params {result['env_params']}")
    else:  # a MuJoCo model's factors: a randomisation of one value each
        print(f"--randomize {result['randomize']}")
    print(result["file"])
    return 0


def _iterations_to_show(text: str) -> list[int]:
    try:
        show = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--show takes iteration numbers like 1,2,3,10, not '{text}'") from None
    from bellman.algos.dp import MAX_ITERATIONS

    if any(not 0 <= k <= MAX_ITERATIONS for k in show):
        raise UsageError(f"--show takes iteration numbers >= 0 and <= {MAX_ITERATIONS:,}")
    return show


def cmd_solve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bellman.experiment import solve as solving

    show = _iterations_to_show(args.show)
    solved = solving.solve(
        args.env,
        args.method,
        iterations=args.iterations,
        tol=args.tol,
        in_place=args.in_place,
        gamma=args.gamma,
        objective=args.objective,
    )
    written = solving.plot(solved, Path(args.out)) if args.plot else []
    if args.json:
        print(json.dumps({**solving.to_json(solved), "plots": [str(p) for p in written]}))
        return 0
    print(solving.report(solved, show))
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bellman.experiment import compare as comparing

    compared = comparing.compare(
        args.dirs, labels=args.labels, normalize=args.normalize, reps=args.reps
    )
    written = comparing.write(compared, Path(args.out))
    if args.json:
        print(json.dumps({**comparing.to_json(compared), "files": [str(p) for p in written]}))
        return 0
    print(comparing.report(compared))
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_arena(args: argparse.Namespace) -> int:
    from bellman.experiment import arena

    if args.ladder:
        if args.snapshots:
            raise UsageError("--ladder and --snapshots are two reports: ask for one")
        if args.b is not None:
            raise UsageError("--ladder rates one run's snapshots: give one run directory")
        result = arena.ladder(args.a, args.games, args.seed, args.seed_index)
        print(json.dumps(result) if args.json else arena.ladder_report(result))
        return 0
    if args.b is None:
        raise UsageError("give two players, A and B (or --ladder with one run directory)")
    if args.simulations is not None:
        cfg.check_int("simulations", args.simulations, 1, 100_000, "a search's simulations")
    if args.snapshots:
        if arena.builtin(args.a) is not None:
            raise UsageError(f"--snapshots plays a run's checkpoints: A is {args.a}, not a run")
        result = arena.curve(
            args.a, args.b, args.games, args.seed, args.seed_index, args.simulations
        )
        print(json.dumps(result) if args.json else arena.curve_report(result))
        return 0
    result = arena.arena(
        args.a,
        args.b,
        args.games,
        env=args.env,
        seed=args.seed,
        seed_index=args.seed_index,
        simulations=args.simulations,
    )
    print(json.dumps(result) if args.json else arena.report(result))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from bellman.experiment import play

    if args.simulations is not None:
        cfg.check_int("simulations", args.simulations, 1, 100_000, "a search's simulations")
    play.play(args.run_dir, args.first, args.seed_index, args.simulations)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from bellman.experiment.collect import collect

    result = collect(
        args.run_dir,
        episodes=args.episodes,
        out=args.out,
        epsilon=args.epsilon,
        noise=args.noise,
        stochastic=args.stochastic,
        random=args.random,
        replay=args.replay,
        expert=args.expert,
        seed_index=args.seed_index,
        seed=args.seed,
        reference_episodes=args.reference_episodes,
        trust_env=args.trust_env,
    )
    summary = {
        "path": str(result.path),
        "dataset_id": result.dataset_id,
        "episodes": result.episodes,
        "steps": result.steps,
        "mean_return": result.mean_return,
        "normalized_score": result.normalized,
        "ref_min_score": result.ref_min_score,
        "ref_max_score": result.ref_max_score,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"{result.episodes:,} episodes, {result.steps:,} steps, mean return "
        f"{result.mean_return:.2f} (normalised {result.normalized:.1f}; random "
        f"{result.ref_min_score:.2f}, expert {result.ref_max_score:.2f})"
    )
    print(result.path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bellman.envs import list_envs

    if args.what in (None, "algos"):
        print("algorithms:")
        for info in algos.ALGOS.values():
            print(f"  {info.name:12s} {info.summary}")
    if args.what in (None, "envs"):
        envs = list_envs()
        print("environments, compiled backend (JAX; trained in one XLA program):")
        for env_id in envs["compiled"]:
            print(f"  {env_id}")
        print("two-player games, compiled backend (pgx; alphazero, bellman arena, bellman play):")
        for env_id in envs["games"]:
            print(f"  {env_id}")
        print("environments, gymnasium backend (any registered id, or module:Class):")
        for env_id in envs["gymnasium"]:
            print(f"  {env_id}")
    if args.what in (None, "datasets"):
        from bellman import datasets

        found = datasets.listing()
        where = " and ".join(str(r) for r in datasets.roots())
        print(f"datasets (Minari, in {where}):" if found else f"datasets: none in {where}")
        for d in found:
            refs = ""
            if d["ref_min_score"] is not None and d["ref_max_score"] is not None:
                refs = f", random {d['ref_min_score']:.1f}, expert {d['ref_max_score']:.1f}"
            print(
                f"  {d['path']}  {d['env'] or '?'}, {d['episodes']} episodes, {d['steps']} "
                f"steps{refs}"
            )
    return 0


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """BellmanWarnings as one `bellman: warning:` line; other warnings as Python shows them."""
    if issubclass(category, BellmanWarning):
        print(f"bellman: warning: {message}", file=sys.stderr, flush=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def _print_debug(exc: BaseException) -> None:
    """The whole traceback of `exc`, with the causes a one-sentence error hides (`from None`)."""
    cause: BaseException | None = exc
    while cause is not None:
        cause.__suppress_context__ = False
        cause = cause.__cause__ or cause.__context__
    traceback.print_exception(exc, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the `bellman` program: its collector can skip all it has imported
        import gc

        gc.freeze()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", BellmanWarning)
            warnings.showwarning = _show_warning
            jax_setup.configure()  # before anything starts JAX: its flags are read then
            _check_algo_name(argv)
            args = build_parser().parse_args(argv)
            handlers = {
                "train": cmd_train,
                "sweep": cmd_sweep,
                "eval": cmd_eval,
                "solve": cmd_solve,
                "compare": cmd_compare,
                "arena": cmd_arena,
                "play": cmd_play,
                "list": cmd_list,
                "collect": cmd_collect,
                "identify": cmd_identify,
            }
            handler = handlers[args.command]
            return handler(args)
    except BellmanError as exc:
        from bellman.experiment.train import Interrupted

        if debug:
            _print_debug(exc)
        print(f"bellman: error: {exc}", file=sys.stderr)
        if isinstance(exc, Interrupted):
            return 128 + exc.signum
        return 2 if isinstance(exc, (UsageError, *USAGE_ERRORS)) else 1
    except KeyboardInterrupt:
        print("bellman: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print("bellman: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except ModuleNotFoundError as exc:
        if debug or (exc.name or "bellman").partition(".")[0] == "bellman":
            raise  # bellman's own module: a bug, with its traceback
        print(
            f"bellman: error: a package bellman needs is missing ({exc}); this install is "
            "incomplete: reinstall bellman (in a checkout: make clean install)",
            file=sys.stderr,
        )
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
