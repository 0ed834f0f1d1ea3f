# ruff: noqa: E501 (the tables keep one case per line)
"""Bad input, from the command line and from Python: one sentence, refused before anything runs.

Each case is a mistake a user can make: a number that is NaN, infinite, out of its range or too
large for the 32-bit counters of the compiled programs, an array larger than the memory, a value
of the wrong type, a name that does not exist. Each must be refused before anything is compiled or
written, with one sentence: from the CLI, a non-zero exit (2 for bad input), exactly one line on
stderr, `bellman: error: <sentence>`, no traceback and no run directory; from Python, a
`bellman.BellmanError` subclass carrying the same sentence.

Tally:
- 203 CLI cases (train for every algorithm family, seed groups, sweep, eval, solve, arena, play,
  list, resume flags), run
  in-process through `bellman.cli.main`;
- 4 CLI cases through a real `python -m bellman` process;
- 42 Python API cases (`bellman.train`, `resume`, `load`, `evaluate`).

Besides these, every numeric,
boolean, choice and tuple field of every algorithm's config and of the run settings is given
bad values (`test_every_field_is_checked`), and what `train` records in config.json reads back
equal for every algorithm (`test_config_json_round_trips`).

Memory checks compare with the memory of the machine (or accelerator) they run on; the in-process
cases pin it to 8 GiB (`bellman.config.memory_limit`) so that they read the same everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bellman
from bellman import algos, cli
from bellman import config as cfg
from bellman.algos import dqn, ppo, sac
from bellman.envs import registry
from bellman.errors import BellmanError, ConfigError, RunDirError, UnknownNameError
from bellman.experiment import train as training
from bellman.experiment.rundir import RunDir
from bellman.experiment.settings import Plan, RunSettings
from tests.conftest import run_cli

PROGRESS = re.compile(r"^\S+ \S+ x\d+: (compiling\.\.\.|evaluating\.\.\.|step )")
MEMORY = 8 * 2**30
"""The memory the in-process cases see (bytes)."""
FINISHED = "{finished}"
"""Stands for a finished q-learning run on FrozenLake-v1 (one seed) in a case's arguments."""
OUT = "{out}"


# ----- the command line, in-process -----

# (arguments, a fragment of the sentence, exit code); "{out}" is a run directory under tmp_path
# that must not exist afterwards ("train" cases get "--out {out}" added)
CLI_CASES: list[tuple[str, str, int]] = [
    # ppo: settings of the run
    ("train ppo --env CartPole-v1 --steps 10000000000000", "steps must be at most 2,147,483,647 (bellman counts steps in 32-bit integers)", 2),
    ("train ppo --env CartPole-v1 --steps 99999999999999999999999999", "steps must be at most 2,147,483,647", 2),
    ("train ppo --env CartPole-v1 --steps 0", "steps must be at least 1, not 0", 2),
    ("train ppo --env CartPole-v1 --steps -5", "steps must be at least 1, not -5", 2),
    ("train ppo --env CartPole-v1 --steps 2147483647", "steps rounded up to whole updates of 512 env steps come to 2,147,483,648", 2),
    ("train ppo --env CartPole-v1 --steps 1e6", "invalid int value: '1e6'", 2),
    ("train ppo --env CartPole-v1 --seed 99999999999999999999999", "seed must be at most 4,294,967,295 (JAX's random keys take 32-bit seeds)", 2),
    ("train ppo --env CartPole-v1 --seed 4294967296", "seed must be at most 4,294,967,295", 2),
    ("train ppo --env CartPole-v1 --seed -1", "seed must be at least 0, not -1", 2),
    ("train ppo --env CartPole-v1 --seeds 0", "seeds must be at least 1, not 0", 2),
    ("train ppo --env CartPole-v1 --seeds 1000000000", "would take", 2),
    ("train ppo --env CartPole-v1 --seeds 100000", "the networks and their optimiser state would take 10.2 GiB (100,000 seed(s) x 107.4 KiB), more than 90% of this machine's 8.0 GiB", 2),
    ("train ppo --env CartPole-v1 --eval-episodes 0", "eval_episodes must be at least 1, not 0", 2),
    ("train ppo --env CartPole-v1 --eval-episodes 10000000000", "eval_episodes must be at most 2,147,483,647", 2),
    ("train ppo --env CartPole-v1 --eval-episodes 1000000000", "the evaluation would take", 2),
    ("train ppo --env CartPole-v1 --evals -1", "evals must be at least 0, not -1", 2),
    ("train ppo --env CartPole-v1 --log-every 0", "log_every must be at least 1, not 0", 2),
    ("train ppo --env CartPole-v1 --log-every 100000000000000000000", "log_every must be at most 2,147,483,647", 2),
    ("train ppo --env CartPole-v1 --checkpoint-every -5", "checkpoint_every must be at least 1", 2),
    ("train ppo --env CartPole-v1 --backend tpu", "invalid choice: 'tpu'", 2),
    ("train ppo --env CartPole-v1 --preset nope", "ppo has no preset 'nope'", 2),
    ("train ppo --env CartPol-v1", "unknown environment 'CartPol-v1'", 2),
    ("train ppo", "the --env flag is required", 2),
    ("train ppp --env CartPole-v1", "unknown algorithm 'ppp'", 2),
    ("train ppo --env CartPole-v1 --learnin-rate 0.1", "unrecognized arguments: --learnin-rate", 2),
    # ppo: its config
    ("train ppo --env CartPole-v1 --learning-rate nan", "learning_rate must be a finite number, not nan", 2),
    ("train ppo --env CartPole-v1 --learning-rate inf", "learning_rate must be a finite number, not inf", 2),
    ("train ppo --env CartPole-v1 --learning-rate -0.1", "learning_rate must be positive, not -0.1", 2),
    ("train ppo --env CartPole-v1 --learning-rate 1e39", "learning_rate must lie within +-3.4e38 (a 32-bit float's range)", 2),
    ("train ppo --env CartPole-v1 --learning-rate fast", "invalid float value: 'fast'", 2),
    ("train ppo --env CartPole-v1 --gamma 1.5", "gamma must lie in [0, 1], not 1.5", 2),
    ("train ppo --env CartPole-v1 --gamma nan", "gamma must be a finite number, not nan", 2),
    ("train ppo --env CartPole-v1 --gae-lambda -0.5", "gae_lambda must lie in [0, 1]", 2),
    ("train ppo --env CartPole-v1 --clip-eps 0", "clip_eps must be positive, not 0.0", 2),
    ("train ppo --env CartPole-v1 --kl-target=-inf", "kl_target must be a finite number, not -inf", 2),
    ("train ppo --env CartPole-v1 --max-grad-norm 0", "max_grad_norm must be positive", 2),
    ("train ppo --env CartPole-v1 --ent-coef -1", "ent_coef must be at least 0, not -1.0", 2),
    ("train ppo --env CartPole-v1 --num-epochs 0", "num_epochs must be at least 1", 2),
    ("train ppo --env CartPole-v1 --num-minibatches 3", "num_minibatches (3) must divide", 2),
    ("train ppo --env CartPole-v1 --num-envs 100000 --num-steps 100000", "num_envs x num_steps must be at most 2,147,483,647 (bellman counts steps in 32-bit integers), not 10,000,000,000", 2),
    ("train ppo --env CartPole-v1 --num-envs 40000 --num-steps 40000", "a rollout would take 77.5 GiB (num_envs x num_steps = 1,600,000,000 transitions x 1 seed(s), 52 bytes each)", 2),
    ("train ppo --env CartPole-v1 --hidden-sizes 0", "hidden_sizes must be one or more positive widths", 2),
    ("train ppo --env CartPole-v1 --hidden-sizes 64 x", "invalid int value: 'x'", 2),
    ("train ppo --env CartPole-v1 --hidden-sizes 100000 100000", "the networks and their optimiser state would take", 2),
    ("train ppo --env CartPole-v1 --init-log-std nan", "init_log_std must be a finite number", 2),
    ("train ppo --env CartPole-v1 --init-log-std 50", "init_log_std must lie in [-20, 20], not 50.0", 2),
    ("train ppo --env CartPole-v1 --activation sigmoid", "invalid choice: 'sigmoid'", 2),
    ("train ppo --env CartPole-v1 --objective kl2", "invalid choice: 'kl2'", 2),
    ("train ppo --env CartPole-v1 --backend gymnasium --seeds 1000 --num-envs 1000", "training would run 1,000,000 gymnasium envs side by side, more than 100,000", 2),
    ("train ppo --env tests.user_envs:MultiDiscreteEnv", "cannot handle the action space MultiDiscrete", 2),
    # a2c
    ("train a2c --env CartPole-v1 --rms-decay 1", "rms_decay must lie in (0, 1), not 1.0", 2),
    ("train a2c --env CartPole-v1 --optimizer-eps 0", "optimizer_eps must be positive", 2),
    ("train a2c --env CartPole-v1 --num-steps 0", "num_steps must be at least 1, not 0", 2),
    ("train a2c --env CartPole-v1 --vf-coef nan", "vf_coef must be a finite number", 2),
    ("train a2c --env CartPole-v1 --optimizer sgd", "invalid choice: 'sgd'", 2),
    # reinforce
    ("train reinforce --env CartPole-v1 --num-steps -1", "num_steps must be at least 0 (0: the time limit), not -1", 2),
    ("train reinforce --env CartPole-v1 --gamma inf", "gamma must be a finite number, not inf", 2),
    ("train reinforce --env CartPole-v1 --vf-coef -0.5", "vf_coef must be at least 0", 2),
    ("train reinforce --env CartPole-v1 --num-envs 3000000000", "num_envs must be at most 2,147,483,647", 2),
    ("train reinforce --env CartPole-v1 --baseline median", "invalid choice: 'median'", 2),
    # dqn
    ("train dqn --env CartPole-v1 --buffer-size 1000000000000000", "the replay memory would take 33,527,612.7 GiB (1,000,000,000,000,000 transitions x 1 seed(s), about 36 bytes each), more than 90% of this machine's 8.0 GiB", 2),
    ("train dqn --env CartPole-v1 --buffer-size 1000000000", "the replay memory would take 33.5 GiB", 2),
    ("train dqn --env CartPole-v1 --buffer-size 0", "buffer_size must be at least 1, not 0", 2),
    ("train dqn --env CartPole-v1 --buffer-size 100000000000000000000", "buffer_size must be at most", 2),
    ("train dqn --env CartPole-v1 --batch-size 100000000000", "batch_size must be at most 2,147,483,647", 2),
    ("train dqn --env CartPole-v1 --batch-size 2000000000", "a minibatch would take", 2),
    ("train dqn --env CartPole-v1 --gradient-steps 100000000000", "gradient_steps must be at most 2,147,483,647", 2),
    ("train dqn --env CartPole-v1 --gradient-steps 1000000 --steps 1000000", "gradient_steps 1,000,000 in each of 10,000 updates come to 10,000,000,000 gradient steps", 2),
    ("train dqn --env CartPole-v1 --gradient-steps -1", "gradient_steps must be at least 0", 2),
    ("train dqn --env CartPole-v1 --n-step 100000", "n_step must be at most 100 (the n-step sum is unrolled in the compiled program)", 2),
    ("train dqn --env CartPole-v1 --n-step 0", "n_step must be at least 1", 2),
    ("train dqn --env CartPole-v1 --n-step 20 --buffer-size 100", "n_step (20) must be at most the transitions each env's ring keeps, buffer_size / num_envs = 10", 2),
    ("train dqn --env CartPole-v1 --tau 0", "tau must lie in (0, 1], not 0.0", 2),
    ("train dqn --env CartPole-v1 --tau nan", "tau must be a finite number", 2),
    ("train dqn --env CartPole-v1 --exploration-final-eps 1.5", "exploration_final_eps must lie in [0, 1], not 1.5", 2),
    ("train dqn --env CartPole-v1 --exploration-fraction -0.1", "exploration_fraction must lie in [0, 1]", 2),
    ("train dqn --env CartPole-v1 --eval-epsilon nan", "eval_epsilon must be a finite number", 2),
    ("train dqn --env CartPole-v1 --priority-beta 2", "priority_beta must lie in [0, 1]", 2),
    ("train dqn --env CartPole-v1 --target-update-interval 0", "target_update_interval must be at least 1", 2),
    ("train dqn --env CartPole-v1 --learning-starts -1", "learning_starts must be at least 0", 2),
    ("train dqn --env CartPole-v1 --train-frequency 0", "train_frequency must be at least 1", 2),
    ("train dqn --env CartPole-v1 --num-envs 2000000000 --train-frequency 2", "num_envs x train_frequency must be at most 2,147,483,647", 2),
    ("train dqn --env CartPole-v1 --clip-rewards -1", "clip_rewards must be at least 0", 2),
    ("train dqn --env CartPole-v1 --final-init-std -1", "final_init_std must be at least 0", 2),
    ("train dqn --env CartPole-v1 --preset atar", "dqn has no preset 'atar' (did you mean: atari", 2),
    ("train dqn --env Pendulum-v1", "dqn needs finitely many actions", 2),
    ("train dqn --env CartPole-v1 --network minatar", "the minatar network reads grids of channels [10, 10, C]", 2),
    ("train dqn --env Breakout-MinAtar --network mlp", "the mlp network reads flat observations", 2),
    ("train dqn --env Breakout-MinAtar --preset atari", "the nature network reads stacked frames [4, 84, 84] (at least 36 pixels a side)", 2),
    # sac, ddpg, td3
    ("train sac --env Pendulum-v1 --alpha 0", "alpha must be positive, not 0.0", 2),
    ("train sac --env Pendulum-v1 --alpha inf", "alpha must be a finite number, not inf", 2),
    ("train sac --env Pendulum-v1 --tau 2", "tau must lie in (0, 1], not 2.0", 2),
    ("train sac --env Pendulum-v1 --target-entropy-scale nan", "target_entropy_scale must be a finite number", 2),
    ("train sac --env Pendulum-v1 --buffer-size 1000000000000000", "the replay memory would take", 2),
    ("train sac --env CartPole-v1", "need a bounded Box action space", 2),
    ("train td3 --env Pendulum-v1 --policy-delay 0", "policy_delay must be at least 1", 2),
    ("train ddpg --env Pendulum-v1 --ou-dt 0", "ou_dt must be positive", 2),
    ("train ddpg --env Pendulum-v1 --target-noise -0.2", "target_noise must be at least 0", 2),
    # tabular
    ("train q-learning --env FrozenLake-v1 --alpha 0", "alpha must lie in (0, 1], not 0.0", 2),
    ("train q-learning --env FrozenLake-v1 --alpha nan", "alpha must be a finite number, not nan", 2),
    ("train q-learning --env FrozenLake-v1 --epsilon 1.5", "epsilon must lie in [0, 1], not 1.5", 2),
    ("train q-learning --env FrozenLake-v1 --epsilon-decay-steps 100000000000", "epsilon_decay_steps must be at most 2,147,483,647 (bellman counts steps in 32-bit integers)", 2),
    ("train q-learning --env FrozenLake-v1 --steps 2147483647", "are numbered up to 2,168,958,435, past 2,147,483,647 (bellman numbers updates in 32-bit integers)", 2),
    ("train q-learning --env FrozenLake-v1 --initial-value 1e39", "initial_value must lie within +-3.4e38", 2),
    ("train q-learning --env FrozenLake-v1 --num-envs 0", "num_envs must be at least 1", 2),
    ("train sarsa --env FrozenLake-v1 --gamma -0.1", "gamma must lie in [0, 1], not -0.1", 2),
    ("train expected-sarsa --env FrozenLake-v1 --objective profit", "invalid choice: 'profit'", 2),
    ("train td0 --env CartPole-v1", "needs a finite env", 2),
    # resume
    ("train ppo --resume {out}", "is not a directory", 1),
    ("train q-learning --resume {finished} --steps 5", "steps must be more than the 64 steps the run has to continue it, not 5", 2),
    ("train q-learning --resume {finished} --seeds 5", "--resume continues a run with its saved settings (and --steps N trains it up to N steps); drop --seeds", 2),
    ("train dqn --resume {finished}", "is a q-learning run; resume it with bellman train q-learning", 1),
    ("train q-learning --resume {finished}", "has already finished", 1),
    # eval
    ("eval {out} --episodes 0", "episodes must be at least 1, not 0", 2),
    ("eval {out} --episodes 1000000000000", "episodes must be at most 2,147,483,647", 2),
    ("eval {out} --episodes many", "invalid int value: 'many'", 2),
    ("eval {out} --seed -1", "seed must be at least 0, not -1", 2),
    ("eval {out} --seed 1099511627776", "seed must be at most 4,294,967,295", 2),
    ("eval {out} --backend tpu", "invalid choice: 'tpu'", 2),
    ("eval {out}", "is not a directory", 1),
    ("eval {finished} --episodes 2000000000", "the evaluation would take", 2),
    # solve
    ("solve FrozenLake-v1 --iterations 10000000000000", "iterations must be at most 1,000,000 (solve keeps V_k of every iteration)", 2),
    ("solve FrozenLake-v1 --iterations -1", "iterations must be >= 0, not -1", 2),
    ("solve FrozenLake-v1 --iterations 1.5", "invalid int value: '1.5'", 2),
    ("solve FrozenLake-v1 --tol nan", "tol must be a finite number >= 0, not nan", 2),
    ("solve FrozenLake-v1 --tol inf", "tol must be a finite number >= 0, not inf", 2),
    ("solve FrozenLake-v1 --tol -1", "tol must be a finite number >= 0, not -1", 2),
    ("solve FrozenLake-v1 --gamma nan", "gamma must lie in [0, 1], not nan", 2),
    ("solve FrozenLake-v1 --gamma 2", "gamma must lie in [0, 1], not 2", 2),
    ("solve FrozenLake-v1 --gamma=-inf", "gamma must lie in [0, 1], not -inf", 2),
    ("solve FrozenLake-v1 --show 100000000000000000000000", "--show takes iteration numbers >= 0 and <= 1,000,000", 2),
    ("solve FrozenLake-v1 --show -1", "--show takes iteration numbers >= 0", 2),
    ("solve FrozenLake-v1 --show 1,x", "--show takes iteration numbers like 1,2,3,10", 2),
    ("solve FrozenLake-v1 --method value-iter", "unknown planning method 'value-iter' (did you mean: value-iteration", 2),
    ("solve FrozenLake-v1 --method exact-evaluation --iterations 3", "exact-evaluation solves a linear system: it has no iterations", 2),
    ("solve FrozenLake-v1 --in-place", "in-place sweeps apply to policy-evaluation only", 2),
    ("solve CartPole-v1", "'CartPole-v1' is not a finite MDP", 2),
    # sweep: grids, ranges, search and Ray flags (refused before the sweep directory exists)
    ("sweep ppo --env CartPole-v1 --out {out}", "a sweep needs settings: --grid name=v1,v2,... or --random N", 2),
    ("sweep ppo --grid learning_rate=1e-3 --out {out}", "the --env flag is required", 2),
    ("sweep ppx --env CartPole-v1 --grid learning_rate=1e-3", "unknown algorithm 'ppx' (did you mean: ppo", 2),
    ("sweep ppo --env CartPole-v1 --grid learnin_rate=1e-3,1e-4 --out {out}", "the algorithm has no setting 'learnin_rate' (did you mean: learning_rate", 2),
    ("sweep ppo --env CartPole-v1 --grid learning_rate --out {out}", "--grid 'learning_rate' must be name=v1,v2,...", 2),
    ("sweep ppo --env CartPole-v1 --grid learning_rate= --out {out}", "--grid learning_rate= has no values", 2),
    ("sweep ppo --env CartPole-v1 --grid learning_rate=1e-3 --grid learning_rate=1e-4 --out {out}", "--grid names learning_rate twice", 2),
    ("sweep ppo --env CartPole-v1 --grid learning_rate=-1,1e-3 --out {out}", "setting learning_rate=-1: learning_rate must be", 2),
    ("sweep ppo --env CartPole-v1 --grid num_envs=4,0 --out {out}", "setting num_envs=0: num_envs must be at least 1", 2),
    ("sweep ppo --env CartPole-v1 --range learning_rate=1e-4:1e-3 --out {out}", "--range needs --random N", 2),
    ("sweep ppo --env CartPole-v1 --random 4 --out {out}", "--random N draws settings from ranges: give --range name=low:high", 2),
    ("sweep ppo --env CartPole-v1 --random 0 --range learning_rate=1e-4:1e-3 --out {out}", "random must be", 2),
    ("sweep ppo --env CartPole-v1 --random 2 --range learning_rate=1e-3:1e-4 --out {out}", "low must be below high", 2),
    ("sweep ppo --env CartPole-v1 --random 2 --range learning_rate=1e-3 --out {out}", "--range learning_rate=1e-3 must be name=low:high", 2),
    ("sweep ppo --env CartPole-v1 --random 2 --range activation=1:2 --out {out}", "only numeric settings have ranges", 2),
    ("sweep ppo --env CartPole-v1 --random 2 --range learning_rate=1e-4:1e-3 --grid learning_rate=1e-3 --out {out}", "learning_rate is both in --grid and in --range", 2),
    ("sweep ppo --env CartPole-v1 --grid learning_rate=1e-3 --trials 5 --out {out}", "--trials apply to --search optuna", 2),
    ("sweep ppo --env CartPole-v1 --search optuna --range learning_rate=1e-4:1e-3 --out {out}", "--search needs --trials N", 2),
    ("sweep ppo --env CartPole-v1 --search optuna --trials 0 --range learning_rate=1e-4:1e-3 --out {out}", "trials must be", 2),
    ("sweep ppo --env CartPole-v1 --search optuna --trials 3 --out {out}", "--search needs settings to search", 2),
    ("sweep ppo --env CartPole-v1 --search optuna --trials 3 --range learning_rate=1e-4:1e-3 --evals 0 --out {out}", "--search prunes trials from evaluations during training: --evals > 0", 2),
    ("sweep ppo --env CartPole-v1 --search optuna --trials 3 --random 2 --range learning_rate=1e-4:1e-3 --out {out}", "--random draws settings at random; --search chooses them", 2),
    ("sweep ppo --env CartPole-v1 --grid learning_rate=1e-3 --ray-cpus 2 --out {out}", "--ray-cpus and --ray-gpus apply to --ray ADDRESS", 2),
    ("sweep ppo --env CartPole-v1 --search optuna --trials 3 --range learning_rate=1e-4:1e-3 --ray auto --out {out}", "--ray runs a grid or random sweep's groups", 2),
    ("sweep dqn --env CartPole-v1 --grid buffer_size=1000,1000000000 --out {out}", "the replay memory would take", 2),
    # a run's seeds in groups (--seed-groups), and a share of a run's seeds (--first-seed)
    ("train ppo --env CartPole-v1 --seeds 4 --seed-groups 3", "seed_groups (3) must divide seeds (4)", 2),
    ("train ppo --env CartPole-v1 --ray auto", "--ray applies to --seed-groups G", 2),
    ("train q-learning --resume {finished} --seed-groups 2", "--seed-groups trains a new run", 2),
    ("train ppo --env CartPole-v1 --first-seed -1", "first_seed must be at least 0, not -1", 2),
    ("train ppo --env CartPole-v1 --backend gymnasium --first-seed 1", "first_seed applies to the compiled backend", 2),
    # two-player games: alphazero, arena, play
    ("train ppo --env connect_four", "ppo learns a single agent's policy, and connect_four is a two-player game", 2),
    ("train dqn --env tic_tac_toe", "train alphazero on it (bellman train alphazero --env tic_tac_toe)", 2),
    ("train alphazero --env CartPole-v1", "CartPole-v1 is a single-agent env", 2),
    ("train alphazero --env connect_four --eval-opponent minimax", "eval_opponent=minimax plays tic_tac_toe only", 2),
    ("train alphazero --env tic_tac_toe --eval-opponent nobody", "invalid choice: 'nobody'", 2),
    ("train alphazero --env tic_tac_toe --num-simulations 0", "num_simulations must be at least 1, not 0", 2),
    ("train alphazero --env tic_tac_toe --batch-size 512 --buffer-size 100", "batch_size (512) must be at most buffer_size (100)", 2),
    ("train alphazero --env tic_tac_toe --dirichlet-fraction 1.5", "dirichlet_fraction must lie in [0, 1], not 1.5", 2),
    ("train q-learning --env DynaMaze-v0 --planning-steps 5", "planning_steps and kappa are Dyna-Q's settings; q-learning does not plan (train dyna-q)", 2),
    ("train dyna-q --env DynaMaze-v0 --kappa -1", "kappa must be at least 0, not -1", 2),
    ("train mpc --env Pendulum-v1 --horizon 0", "horizon must be at least 1, not 0", 2),
    ("train mpc --env Pendulum-v1 --backend gymnasium", "mpc plans through the env's own step function, a JAX function on the compiled backend", 2),
    ("train mpc --env Pendulum-v1 --elites 600", "elites (600) must be at most population (500)", 2),
    ("train mpc --env Pendulum-v1 --planner ilqr", "invalid choice: 'ilqr'", 2),
    ("train alphazero --env othello --mirror", "mirror=True needs a left-right symmetric game", 2),
    # muzero: single-agent envs and games, compiled
    ("train muzero --env Pendulum-v1", "muzero searches over finitely many actions", 2),
    ("train muzero --env LunarLander-v3", "muzero runs on the compiled backend, with JAX envs", 2),
    ("train muzero --env CartPole-v1 --eval-opponent minimax", "eval_opponent=minimax plays tic_tac_toe only", 2),
    ("train muzero --env CartPole-v1 --buffer-size 120", "buffer_size / num_envs (15 steps per env) must exceed unroll_steps + td_steps + 1 = 16", 2),
    ("train muzero --env CartPole-v1 --reanalyse 1.5", "reanalyse must lie in [0, 1], not 1.5", 2),
    ("train muzero --env tic_tac_toe --unroll-steps 0", "unroll_steps must be at least 1, not 0", 2),
    ("arena {finished} random", "is a q-learning run on FrozenLake-v1; the arena plays the runs of alphazero and muzero on two-player games", 1),
    ("arena random alphabeta:9 --env connect_four", "alphabeta takes a depth from 1 to 8, not '9'", 2),
    ("arena random random:3 --env tic_tac_toe", "'random' takes no number ('random:3')", 2),
    ("arena random random --env tic_tac_toe --seed -1", "seed must be", 2),
    ("arena random random --env tic_tac_toe --games 1000000", "games must be at most 100,000", 2),
    ("arena {finished} --ladder", "is a q-learning run on FrozenLake-v1", 1),
    ("arena random random --ladder --env tic_tac_toe", "--ladder rates one run's snapshots: give one run directory", 2),
    ("arena {finished} random --ladder --snapshots", "--ladder and --snapshots are two reports: ask for one", 2),
    ("arena random random --snapshots --env tic_tac_toe", "--snapshots plays a run's checkpoints: A is random, not a run", 2),
    ("arena {finished} random --snapshots", "is a q-learning run on FrozenLake-v1", 1),
    ("play {finished}", "is a q-learning run on FrozenLake-v1", 1),
    ("play {finished} --simulations 0", "simulations must be at least 1, not 0", 2),
    # list, and no command
    ("list everything", "invalid choice: 'everything'", 2),
    ("frobnicate", "invalid choice: 'frobnicate'", 2),
    ("", "the following arguments are required: COMMAND", 2),
]  # fmt: skip

# a few through a real `python -m bellman` process (imports and exit code included), with the
# real machine's memory: sizes no machine has
SUBPROCESS_CASES: list[tuple[str, str, int]] = [
    ("train ppo --env CartPole-v1 --steps 10000000000000", "steps must be at most 2,147,483,647 (bellman counts steps in 32-bit integers)", 2),
    ("train dqn --env CartPole-v1 --buffer-size 1000000000000000", "the replay memory would take 33,527,612.7 GiB", 2),
    ("solve FrozenLake-v1 --gamma nan", "gamma must lie in [0, 1], not nan", 2),
    ("eval {out} --episodes 0", "episodes must be at least 1, not 0", 2),
]  # fmt: skip


@dataclasses.dataclass
class Context:
    """What a case may use: a directory that must stay absent, and a finished run."""

    out: Path
    finished: Path

    def argv(self, args: str) -> list[str]:
        argv = args.split()
        if argv[:1] == ["train"] and "--resume" not in argv:
            argv += ["--out", OUT]
        return [
            a.replace(OUT, str(self.out)).replace(FINISHED, str(self.finished)) if "{" in a else a
            for a in argv
        ]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished q-learning run on FrozenLake-v1 (two seconds to train)."""
    out = tmp_path_factory.mktemp("bad-inputs") / "finished"
    bellman.train(
        "q-learning", "FrozenLake-v1", steps=64, eval_episodes=2, evals=0, out=out, progress=False
    )
    return out


def _refuse_create(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the input was not refused: the run directory was about to be created")


@pytest.fixture
def context(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A case's context, with the memory pinned to 8 GiB and a guard: creating a run directory
    fails the test at once instead of training."""
    monkeypatch.setattr(cfg, "memory_limit", lambda: (MEMORY, "this machine's"))
    monkeypatch.setattr(RunDir, "create", _refuse_create)
    return Context(tmp_path / "run", finished_run)


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not progress lines."""
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS.match(line)]


def assert_one_sentence(code: int, stderr: str, fragment: str, expected_code: int) -> None:
    assert "Traceback" not in stderr, stderr
    assert code == expected_code, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("bellman: error: "), lines[0]
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("args", "fragment", "code"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses(
    args: str,
    fragment: str,
    code: int,
    context: Context,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    returned = cli.main(context.argv(args))
    assert_one_sentence(returned, capsys.readouterr().err, fragment, code)
    assert not context.out.exists(), "a run directory was left behind"


@pytest.mark.parametrize(
    ("args", "fragment", "code"), SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES]
)
def test_real_cli_refuses(args: str, fragment: str, code: int, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [a.replace(OUT, str(out)) for a in args.split()]
    if argv[0] == "train":
        argv += ["--out", str(out)]
    result = run_cli(*argv, timeout=120)
    assert_one_sentence(result.returncode, result.stderr, fragment, code)
    assert not out.exists(), "a run directory was left behind"


# ----- Python -----


def _train(**kwargs: Any) -> Callable[[Context], Any]:
    """`bellman.train` with small settings and `kwargs` (algo, env default to ppo, CartPole)."""

    def call(ctx: Context) -> Any:
        args = {"algo": "ppo", "env": "CartPole-v1", "out": ctx.out, "progress": False, **kwargs}
        return bellman.train(args.pop("algo"), args.pop("env"), **args)

    return call


# (id, the call, the error class, a fragment of its sentence)
PY_CASES: list[tuple[str, Callable[[Context], Any], type[BellmanError], str]] = [
    ("steps='abc'", _train(steps="abc"), ConfigError, "steps must be of type int, not 'abc'"),
    ("steps=1.5", _train(steps=1.5), ConfigError, "steps must be of type int, not 1.5"),
    ("steps=inf", _train(steps=math.inf), ConfigError, "steps must be of type int, not inf"),
    ("steps=2**70", _train(steps=2**70), ConfigError, "steps must be at most 2,147,483,647"),
    ("seeds=2.5", _train(seeds=2.5), ConfigError, "seeds must be of type int, not 2.5"),
    ("seeds=True", _train(seeds=True), ConfigError, "seeds must be of type int, not True"),
    ("seeds=[2]", _train(seeds=[2]), ConfigError, "seeds must be of type int"),
    ("seed=2**64", _train(seed=2**64), ConfigError, "seed must be at most 4,294,967,295"),
    ("seed=-3", _train(seed=-3), ConfigError, "seed must be at least 0, not -3"),
    ("env=123", _train(env=123), ConfigError, "env must be of type str, not 123"),
    ("env=None", _train(env=None), ConfigError, "env must be of type str, not None"),
    ("env='CartPol-v1'", _train(env="CartPol-v1"), UnknownNameError, "unknown environment"),
    ("algo=123", _train(algo=123), ConfigError, "algo must be a name (ppo, a2c"),
    ("algo='ppp'", _train(algo="ppp"), UnknownNameError, "unknown algorithm 'ppp'"),
    ("backend=1", _train(backend=1), ConfigError, "backend must be one of auto, compiled"),
    ("preset=5", _train(algo="dqn", preset=5), ConfigError, "preset must be of type str"),
    ("eval_episodes=0", _train(eval_episodes=0), ConfigError, "eval_episodes must be at least 1"),
    ("log_every=-1", _train(log_every=-1), ConfigError, "log_every must be at least 1"),
    ("out=123", _train(out=123), ConfigError, "out must be a path (a str or os.PathLike), not 123"),
    ("learning_rate=[1]", _train(learning_rate=[1]), ConfigError, "learning_rate must be of type float, not [1]"),
    ("learning_rate='fast'", _train(learning_rate="fast"), ConfigError, "learning_rate must be of type float"),
    ("learning_rate=nan", _train(learning_rate=math.nan), ConfigError, "learning_rate must be a finite number, not nan"),
    ("learning_rate=10**400", _train(learning_rate=10**400), ConfigError, "learning_rate must be of type float"),
    ("gamma=True", _train(gamma=True), ConfigError, "gamma must be of type float, not True"),
    ("hidden_sizes=(64, 'a')", _train(hidden_sizes=(64, "a")), ConfigError, "hidden_sizes must be of type int, not 'a'"),
    ("anneal_lr=5", _train(anneal_lr=5), ConfigError, "anneal_lr must be of type bool, not 5"),
    ("activation=3", _train(activation=3), ConfigError, "activation must be one of tanh"),
    ("learnin_rate=1e-3", _train(learnin_rate=1e-3), ConfigError, "PPOConfig has no setting 'learnin_rate' (did you mean: learning_rate?)"),
    ("config=DQNConfig() for ppo", _train(config=dqn.DQNConfig()), ConfigError, "config must be a PPOConfig (bellman.algos.ppo.Config) for ppo, not DQNConfig"),
    ("config={...}", _train(config={"num_envs": 4}), ConfigError, "config must be a PPOConfig"),
    ("config=PPOConfig(num_envs='4')", _train(config=ppo.PPOConfig(num_envs="4")), ConfigError, "num_envs must be of type int, not '4'"),  # type: ignore[arg-type]
    ("config=PPOConfig(gamma=nan)", _train(config=ppo.PPOConfig(gamma=math.nan)), ConfigError, "gamma must be a finite number, not nan"),
    ("config=SACConfig(buffer_size=10**15)", _train(algo="sac", env="Pendulum-v1", config=sac.SACConfig(buffer_size=10**15)), ConfigError, "the replay memory would take"),
    ("resume(123)", lambda ctx: bellman.resume(123), ConfigError, "run_dir must be a path (a str or os.PathLike), not 123"),
    ("resume(missing)", lambda ctx: bellman.resume(ctx.out), RunDirError, "is not a directory"),
    ("resume(finished)", lambda ctx: bellman.resume(ctx.finished), RunDirError, "has already finished"),
    ("load(None)", lambda ctx: bellman.load(None), ConfigError, "run_dir must be a path (a str or os.PathLike), not None"),
    ("load(run, seed=5)", lambda ctx: bellman.load(ctx.finished, seed=5), RunDirError, "the run has seeds 0..0, not 5"),
    ("load(run, seed='0')", lambda ctx: bellman.load(ctx.finished, seed="0"), RunDirError, "the run has seeds 0..0, not '0'"),
    ("evaluate(episodes=0)", lambda ctx: bellman.evaluate(ctx.finished, episodes=0), ConfigError, "episodes must be at least 1, not 0"),
    ("evaluate(seed=-1)", lambda ctx: bellman.evaluate(ctx.finished, seed=-1), ConfigError, "seed must be at least 0, not -1"),
    ("evaluate(backend=5)", lambda ctx: bellman.evaluate(ctx.finished, backend=5), ConfigError, "backend must be compiled, gymnasium or None"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "fragment"), [c[1:] for c in PY_CASES], ids=[c[0] for c in PY_CASES]
)
def test_python_refuses(
    call: Callable[[Context], Any], error: type[BellmanError], fragment: str, context: Context
) -> None:
    with pytest.raises(error) as raised:
        call(context)
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value), "one sentence"
    assert not context.out.exists(), "a run directory was left behind"


@pytest.mark.parametrize(
    ("flags", "kwargs"),
    [
        (["--tau", "nan"], {"tau": math.nan}),
        (["--seed", "-1"], {"seed": -1}),
        (["--buffer-size", "1000000000"], {"buffer_size": 10**9}),
    ],
)
def test_python_and_cli_say_the_same(
    flags: list[str], kwargs: dict[str, Any], context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sentence the CLI prints is the one Python raises."""
    with pytest.raises(ConfigError) as raised:
        bellman.train("dqn", "CartPole-v1", out=context.out, progress=False, **kwargs)
    capsys.readouterr()
    assert cli.main(["train", "dqn", "--env", "CartPole-v1", *flags]) == 2
    assert capsys.readouterr().err.strip() == f"bellman: error: {raised.value}"


def test_tally() -> None:
    """The module docstring's tally is the tables' (and at least 80 distinct bad inputs)."""
    doc = " ".join((__doc__ or "").split())
    assert f"- {len(CLI_CASES)} CLI cases (" in doc
    assert f"- {len(SUBPROCESS_CASES)} CLI cases through a real" in doc
    assert f"- {len(PY_CASES)} Python API cases" in doc
    cases = {c[0] for c in CLI_CASES} | {c[0] for c in PY_CASES}
    assert len(cases) == len(CLI_CASES) + len(PY_CASES) >= 80


# ----- every field, every algorithm -----


def _bad_values(annotation: Any) -> list[Any]:
    """Values no field of this type accepts."""
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return ["no-such-choice", 3]
    if origin is tuple:
        return [[64], (0,), (2**70,), (64, "x")]
    if annotation is bool:
        return ["yes", 2]
    if annotation is int:
        return [2**70, -(2**70), 1.5, "4", True]
    if annotation is float:
        return [math.nan, math.inf, -math.inf, 1e39, 10**400, "0.1", True]
    if annotation is str:
        return [123]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _bad_values(args[0])


def _field_cases() -> list[tuple[str, str, Any]]:
    cases = []
    for name in sorted({info.module.__name__: n for n, info in algos.ALGOS.items()}.values()):
        for field, annotation in cfg.field_types(algos.get(name).module.Config).items():
            cases += [(name, field, bad) for bad in _bad_values(annotation)]
    return cases


@pytest.mark.parametrize(("name", "field", "bad"), _field_cases())
def test_every_field_is_checked(name: str, field: str, bad: Any) -> None:
    """Every field of every algorithm's config refuses a value of the wrong type, NaN,
    infinities, floats beyond float32 and ints beyond 32 bits, naming the field."""
    config = dataclasses.replace(algos.get(name).make_config(), **{field: bad})
    with pytest.raises(ConfigError, match=field):
        config.validate()


@pytest.mark.parametrize(
    ("field", "bad"),
    [(f, bad) for f, a in cfg.field_types(RunSettings).items() for bad in _bad_values(a)],
)
def test_every_setting_is_checked(field: str, bad: Any) -> None:
    settings = dataclasses.replace(RunSettings(env="CartPole-v1"), **{field: bad})
    with pytest.raises(ConfigError, match=field):
        settings.validate()


# ----- config.json -----

VARIANTS: dict[str, dict[str, Any]] = {
    "ppo": {"learning_rate": 1e-4, "hidden_sizes": (32, 16), "objective": "kl", "gamma": 1.0},
    "a2c": {"optimizer": "adam", "rms_decay": 0.9, "init_log_std": -0.5},
    "reinforce": {"num_steps": 0, "baseline": "mean", "ent_coef": 1e-6},
    "dqn": {"tau": 0.005, "n_step": 3, "prioritized": True, "network": "mlp", "max_grad_norm": 0.0},
    "ddpg": {"noise_type": "ou", "ou_dt": 1e-2, "actor_learning_rate": 1e-4},
    "td3": {"target_noise_clip": 0.25, "hidden_sizes": (400, 300)},
    "sac": {"alpha": 0.2, "autotune": False, "target_entropy_scale": -0.5},
    "q-learning": {"initial_value": -1.5e-7, "objective": "cost"},
    "sarsa": {"epsilon_decay_steps": 1000},
    "expected-sarsa": {"alpha": 1.0},
    "td0": {"gamma": 0.0},
    "dyna-q": {"planning_steps": 50, "kappa": 1e-3},
    "mpc": {"planner": "mppi", "temperature": 0.5, "warm_start": False, "horizon": 10},
    "pets": {"hidden_sizes": (64, 32), "activation": "relu", "holdout": 0.0, "particles": 10},
    "mbpo": {"model_hidden_sizes": (64, 32), "rollout_length": 3, "real_ratio": 0.5},
    "es": {"strategy": "ars", "hidden_sizes": (), "top_directions": 4, "population": 64},
    "bc": {"learning_rate": 1e-4, "hidden_sizes": (64,), "normalize_obs": False, "batch_size": 64},
    "dagger": {"beta": 0.5, "beta_decay": 0.9, "num_envs": 2, "aggregate_size": 1000},
    "gail": {"disc_hidden_sizes": (32,), "reward": "logit", "disc_steps": 2},
    "td3bc": {"alpha": 10.0, "policy_delay": 1, "hidden_sizes": (64, 64)},
    "cql": {"cql_alpha": 10.0, "lagrange_threshold": 5.0, "backup_entropy": True, "loss": "mse"},
    "iql": {"expectile": 0.9, "reward_scale": "none", "beta": 10.0},
    "ram": {"glimpses": 4, "scales": 3, "location_std": 0.05, "locations": "random"},
    "alphazero": {"mcts": "puct", "dirichlet_alpha": 0.03, "eval_opponent": "mcts"},
    "muzero": {"mcts": "puct", "reanalyse": 0.25, "fresh_values": True, "eval_opponent": "mcts"},
}
ENVS = {
    "ddpg": "Pendulum-v1",
    "td3": "Pendulum-v1",
    "sac": "Pendulum-v1",
    "alphazero": "connect_four",
    "mpc": "Pendulum-v1",
    "pets": "Pendulum-v1",
    "mbpo": "Pendulum-v1",
    "td3bc": "Pendulum-v1",
    "cql": "Pendulum-v1",
    "iql": "Pendulum-v1",
    "ram": "TranslatedDigits-v0",
}


@pytest.mark.parametrize("name", sorted(algos.ALGOS))
def test_config_json_round_trips(name: str, tmp_path: Path) -> None:
    """What `train` records in config.json (`run_record`) reads back, through JSON, as the same
    settings, config and plan: tuples, None, choices and floats like 1e-4 included."""
    info = algos.get(name)
    tabular = info.module.__name__.endswith("tabular")
    env = ENVS.get(name, "FrozenLake-v1" if tabular else "CartPole-v1")
    resolved = registry.resolve(env)
    for changes in ({}, VARIANTS[name]):
        config = cfg.with_overrides(info.make_config(), changes)
        config.validate()
        if hasattr(info.module, "fit_to_env"):
            config = info.module.fit_to_env(config, resolved.spec)
        settings = RunSettings(env=env, steps=12_345, seeds=3, seed=2**32 - 1, log_every=None)
        settings.validate()
        plan = Plan.make(settings, 12_345, config.num_envs * config.num_steps)
        path = tmp_path / f"{name}-{len(changes)}"
        record = training.run_record(info.name, settings, config, resolved, plan)
        RunDir.create(path, record)
        read = json.loads((path / "config.json").read_text())
        assert cfg.with_overrides(info.make_config(), read["config"]) == config
        assert cfg.with_overrides(RunSettings(env=read["env"]), read["settings"]) == settings
        assert Plan(**read["plan"]) == plan


def test_what_json_cannot_hold_is_refused_up_front(context: Context) -> None:
    """config.json holds NaN and infinities as null (`rundir.jsonable`), which no float field
    reads back: such values are refused before anything is written."""
    with pytest.raises(ConfigError, match="learning_rate must be of type float, not None"):
        cfg.with_overrides(dqn.DQNConfig(), {"learning_rate": None})
    with pytest.raises(ConfigError, match="tau must be a finite number, not inf"):
        bellman.train("dqn", "CartPole-v1", tau=math.inf, out=context.out, progress=False)
