"""AlphaZero (Silver et al., 2017 and 2018): a policy-value network improved by tree search
through the game's own rules, trained on self-play.

The paper's loop, as the self-play runner (`bellman.runners.selfplay`) drives it:

    repeat:
        play games against itself, each move chosen by MCTS        -> runner, calling `act`
          guided by (p, v) = f_theta(s); keep (s_t, pi_t, player_t)
        at the game's end z = the outcome for player_t              -> runner (targets)
        sample positions from the recent games                      -> runner (replay)
        minimise l = (z - v)^2 - pi^T log p + c ||theta||^2         -> `learn`, `loss`

The search is DeepMind's mctx (`search`): Gumbel MuZero's search (Danihelka et al., 2022) by
default, whose root is Sequential Halving over Gumbel-sampled actions and whose policy target is
the improved policy, so it improves the policy even with few simulations; or the papers' PUCT
(`mcts="puct"`) with Dirichlet noise at the root and moves sampled from the visit counts at a
temperature. The model the search plans with is the game itself (`GameEnv.play`): each
simulated move steps the pgx game, and two-player alternation is a discount of -1 (a value is
always from the view of the player to move, so a child's value counts negated for its parent).

The network (`PolicyValueNet`) is the papers' residual tower: a 3x3 convolution, `blocks`
residual blocks of two 3x3 convolutions, a policy head (1x1 convolution, dense to the moves)
and a value head (1x1 convolution, dense, tanh); layer normalisation stands in for batch
normalisation (no running statistics: the same function in self-play and in training).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import mctx
import optax
from flax import struct

from bellman import config as cfg
from bellman import nets
from bellman.envs.games import MIRRORED, PASSING, GameEnv, is_game
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.errors import EnvError

Opponent = Literal["random", "minimax", "alphabeta", "mcts"]


@dataclass(frozen=True)
class AlphaZeroConfig:
    """AlphaZero's settings; the defaults suit small boards (tic-tac-toe, Connect Four) on a CPU."""

    num_envs: int = 64
    """Self-play games per seed, played side by side."""
    num_steps: int = 1
    """Moves of every game between two learning phases (an update plays num_envs * num_steps
    moves, bellman's env steps)."""
    num_simulations: int = 32
    """Simulations of each search in self-play."""
    mcts: Literal["gumbel", "puct"] = "gumbel"
    """gumbel: Gumbel MuZero's search, acting by Sequential Halving and learning the improved
    policy; puct: the papers' PUCT search, learning the visit distribution."""
    max_considered_actions: int = 16
    """Gumbel: actions sampled at the root for Sequential Halving."""
    dirichlet_alpha: float = 0.3
    """PUCT: concentration of the Dirichlet noise added to the root's prior in self-play."""
    dirichlet_fraction: float = 0.25
    """PUCT: weight of that noise in the root's prior."""
    temperature_moves: int = 8
    """The first moves of each self-play game are sampled from the search's policy (PUCT: the
    visit counts at temperature 1; Gumbel: the improved policy), for varied openings; the later
    ones are the search's choice (PUCT: the most visited move; Gumbel: Sequential Halving's)."""
    random_opening_moves: int = 0
    """The first moves of each self-play game are uniformly random legal moves (not in the
    papers): every opening is played, so the network learns positions that its own play never
    reaches but an opponent's can (tic-tac-toe's minimax picks among all drawing moves). The
    positions still get the search's policy target."""
    eval_simulations: int = 32
    """Simulations of each search when the agent is evaluated (no noise, the best move)."""
    eval_opponent: Opponent = "random"
    """The opponent of the evaluations (`bellman.envs.players`): random (uniform legal moves),
    minimax (tic-tac-toe's exact play), alphabeta (Connect Four, depth 4) or mcts (pure MCTS with
    random rollouts, `eval_opponent_simulations`)."""
    eval_opponent_simulations: int = 400
    """Simulations of the pure-MCTS opponent."""
    channels: int = 64
    """Convolution channels of the residual tower."""
    blocks: int = 4
    """Residual blocks."""
    learning_rate: float = 1e-3
    """Adam step size at the start."""
    anneal_lr: bool = True
    """Decay the step size along a cosine to a tenth of it at the end of training (the papers
    drop it tenfold in steps)."""
    weight_decay: float = 1e-4
    """c of the loss's L2 term c ||theta||^2 (the convolution and dense kernels)."""
    max_grad_norm: float = 1.0
    """Rescale each gradient so that its global norm is at most this."""
    batch_size: int = 256
    """Positions per gradient step."""
    gradient_steps: int = 1
    """Gradient steps after each update's moves."""
    buffer_size: int = 100_000
    """Positions of finished games kept for training (the newest)."""
    learning_starts: int = 1_000
    """Positions stored before the first gradient step."""
    no_pass_before: int = 0
    """Go: the search does not pass in the first no_pass_before moves of a game while another
    move is legal (not in the papers; 0: passing is always considered). A network that values
    an early pass too highly otherwise passes while its opponent fills the board."""
    mirror: bool = False
    """Train on each sampled position or its mirror image, at random (the board reflected left
    to right, its move targets with it), on the games whose rules that leaves unchanged
    (`bellman.envs.games.MIRRORED`: tic-tac-toe, Connect Four, Go): twice the positions for
    the same self-play. AlphaGo Zero augments with all eight symmetries of the Go board;
    AlphaZero does not augment."""

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    def validate(self) -> None:
        """Raise ConfigError for a setting of the wrong type, out of range or inconsistent."""
        cfg.check_fields(self)
        cfg.at_least(
            self,
            1,
            "num_envs",
            "num_steps",
            "num_simulations",
            "eval_simulations",
            "eval_opponent_simulations",
            "channels",
            "batch_size",
            "buffer_size",
            "max_considered_actions",
        )
        cfg.at_least(
            self,
            0,
            "blocks",
            "gradient_steps",
            "learning_starts",
            "temperature_moves",
            "random_opening_moves",
            "no_pass_before",
        )
        cfg.positive(self, "learning_rate", "max_grad_norm", "dirichlet_alpha")
        cfg.at_least(self, 0, "weight_decay")
        cfg.within(self, 0, 1, "dirichlet_fraction")
        cfg.require(
            self.batch_size <= self.buffer_size,
            f"batch_size ({self.batch_size}) must be at most buffer_size ({self.buffer_size})",
        )


Config = AlphaZeroConfig
DEFAULT_STEPS = 200_000
evaluation_action = None
"""Unused: a game's evaluation plays against an opponent (`bellman.runners.selfplay`)."""
evaluation_memory = None


class AlphaZeroState(struct.PyTreeNode):
    params: Any
    opt_state: Any
    steps: jax.Array
    """Gradient steps taken."""
    total_steps: int = struct.field(pytree_node=False)
    """Gradient steps the run plans (its step size anneals over them)."""


class Batch(struct.PyTreeNode):
    """Positions of finished games with their targets (leading axis: positions)."""

    obs: jax.Array
    """The board from the view of the player to move."""
    legal: jax.Array
    """`[A]` the legal moves."""
    policy: jax.Array
    """`[A]` the search's policy target pi."""
    value: jax.Array
    """The game's outcome z for the player to move: +1, 0 or -1."""


# ----- the network -----


class PolicyValueNet(nn.Module):
    """(p, v) = f_theta(s): move logits and a value in [-1, 1], for boards `[..., H, W, C]`."""

    num_actions: int
    channels: int
    blocks: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = obs.astype(jnp.float32)
        x = nn.relu(nn.LayerNorm()(nets.Conv(self.channels, (3, 3))(x)))
        for _ in range(self.blocks):
            y = nn.relu(nn.LayerNorm()(nets.Conv(self.channels, (3, 3))(x)))
            y = nn.LayerNorm()(nets.Conv(self.channels, (3, 3))(y))
            x = nn.relu(x + y)
        # the heads normalise their whole (flattened) maps: over 1 or 2 channels alone, layer
        # normalisation would leave nothing of the board
        flat = lambda y: nn.relu(nn.LayerNorm()(y.reshape((*y.shape[:-3], -1))))
        logits = nn.Dense(self.num_actions)(flat(nets.Conv(2, (1, 1))(x)))
        v = nn.relu(nn.Dense(self.channels)(flat(nets.Conv(1, (1, 1))(x))))
        value = jnp.tanh(nn.Dense(1)(v))[..., 0]
        return logits, value


def network(config: AlphaZeroConfig, spec: EnvSpec) -> PolicyValueNet:
    assert isinstance(spec.action_space, Discrete)
    return PolicyValueNet(spec.action_space.n, config.channels, config.blocks)


def predict(
    config: AlphaZeroConfig, spec: EnvSpec, params: Any, obs: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(p, v) = f_theta(s): move logits and values for boards `[B, H, W, C]`."""
    return cast(tuple[jax.Array, jax.Array], network(config, spec).apply(params, obs))


def masked_logits(logits: jax.Array, legal: jax.Array) -> jax.Array:
    """Logits with the illegal moves removed (the lowest float; no probability)."""
    logits = logits - jnp.max(logits, axis=-1, keepdims=True)
    return jnp.where(legal, logits, jnp.finfo(logits.dtype).min)


def preset_for(spec: EnvSpec) -> str | None:
    """The game's own preset (`bellman/presets/alphazero.toml`), where it has one."""
    return spec.id if spec.id in PRESET_GAMES else None


PRESET_GAMES = ("tic_tac_toe", "connect_four", "go_9x9")


def check_env(config: AlphaZeroConfig, spec: EnvSpec) -> None:
    """AlphaZero plays the two-player games (`bellman.envs.games`); the runner checks the env
    itself (`check_game`), a spec alone does not say."""
    needs = {"minimax": "tic_tac_toe", "alphabeta": "connect_four"}.get(config.eval_opponent)
    if needs is not None and spec.id != needs:
        raise EnvError(
            f"eval_opponent={config.eval_opponent} plays {needs} only; {spec.id}'s opponents are "
            "random and mcts"
        )
    if config.mirror and spec.id not in MIRRORED:
        raise EnvError(
            f"mirror=True needs a left-right symmetric game ({', '.join(MIRRORED)}); {spec.id}'s "
            "rules are not"
        )
    if config.no_pass_before and spec.id not in PASSING:
        raise EnvError(
            f"no_pass_before applies to the games with a pass move ({', '.join(PASSING)}), "
            f"not to {spec.id}"
        )
    if len(spec.obs_shape) != 3:
        raise EnvError(
            f"alphazero's network takes boards (height, width, planes); {spec.id}'s observations "
            f"have shape {spec.obs_shape}"
        )


def check_game(env: Any) -> None:
    """EnvError unless `env` is a two-player game."""
    if not is_game(env):
        from bellman.envs.games import GAMES

        raise EnvError(
            f"alphazero plays two-player board games ({', '.join(GAMES)}); "
            f"{env.spec.id} is a single-agent env: train ppo or dqn on it"
        )


def init(key: jax.Array, config: AlphaZeroConfig, spec: EnvSpec, total_updates: int) -> Any:
    obs = jnp.zeros((1, *spec.obs_shape), jnp.float32)
    params = network(config, spec).init(key, obs)
    total = total_updates * config.gradient_steps
    return AlphaZeroState(params, optimizer(config).init(params), jnp.zeros((), jnp.int32), total)


def step_size(config: AlphaZeroConfig, state: AlphaZeroState) -> jax.Array:
    """The step size after `state.steps` of the run's `state.total_steps` gradient steps."""
    if not config.anneal_lr:
        return jnp.asarray(config.learning_rate, jnp.float32)
    progress = jnp.clip(state.steps / max(state.total_steps, 1), 0.0, 1.0)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))


def optimizer(config: AlphaZeroConfig) -> optax.GradientTransformation:
    """Adam with gradient clipping, its step size given at each step (`step_size`)."""
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rate),
    )


def greedy(config: AlphaZeroConfig, spec: EnvSpec, state: Any, obs: jax.Array) -> jax.Array:
    """The network's most likely move, without search (and without the legal moves, which an
    observation alone does not give; the search masks them)."""
    logits, _ = predict(config, spec, state.params, obs)
    return jnp.argmax(logits, axis=-1)


# ----- the search -----

# A game's values lie in [-1, 1]: the searches normalise Q with these known bounds, as MuZero
# does for board games, not with the smallest and largest Q in the tree (mctx's default, meant
# for rewards of unknown scale), which turns differences of a thousandth between moves that are
# all about a draw into the whole range and lets them outweigh the prior.
bounded_q = functools.partial(mctx.qtransform_by_min_max, min_value=-1.0, max_value=1.0)
"""PUCT's Q: (q + 1) / 2, in [0, 1]."""
completed_q = functools.partial(
    mctx.qtransform_completed_by_mix_value, rescale_values=False, value_scale=0.05
)
"""Gumbel's sigma(completed Q) = (c_visit + max N) c_scale (q + 1) / 2 with the paper's c_scale
= 0.1 (the constant shift leaves the softmax unchanged)."""


def allowed_moves(config: AlphaZeroConfig, game: GameEnv, states: Any) -> jax.Array:
    """The moves the search considers in the positions `states` `[B]`: the legal ones, less Go's
    pass in a game's first `no_pass_before` moves where another move is legal."""
    legal = states.legal_action_mask
    if config.no_pass_before == 0:
        return legal
    is_pass = jnp.arange(legal.shape[-1]) == game.pass_move
    early = states._step_count < config.no_pass_before
    other = jnp.any(legal & ~is_pass, axis=-1)
    return legal & ~(is_pass & (early & other)[:, None])


def search(
    config: AlphaZeroConfig,
    game: GameEnv,
    params: Any,
    states: Any,
    key: jax.Array,
    num_simulations: int,
    explore: bool,
    move_number: jax.Array | None = None,
) -> mctx.PolicyOutput:
    """MCTS from the batched game positions `states` `[B]` (pgx states): the chosen moves
    (`.action`) and the policy targets (`.action_weights`).

    `explore`: self-play (Gumbel noise at the root; PUCT's Dirichlet noise and sampling by visit
    counts for the first `temperature_moves` moves, `move_number` `[B]`); else the best move.
    (`act` samples Gumbel's opening moves.)
    """

    def evaluate(p: Any, s: Any) -> tuple[jax.Array, jax.Array]:
        logits, value = predict(config, game.spec, p, s.observation)
        return masked_logits(logits, allowed_moves(config, game, s)), value

    logits, value = evaluate(params, states)
    root = mctx.RootFnOutput(prior_logits=logits, value=value, embedding=states)

    def recurrent(p: Any, _: jax.Array, action: jax.Array, s: Any) -> Any:
        mover = s.current_player
        after = jax.vmap(game.play)(s, action)
        logits, value = evaluate(p, after)
        ended = after.terminated
        reward = jnp.take_along_axis(after.rewards, mover[:, None], axis=1)[:, 0]
        out = mctx.RecurrentFnOutput(
            reward=reward,
            discount=jnp.where(ended, 0.0, -1.0),  # the next value is the opponent's
            prior_logits=logits,
            value=jnp.where(ended, 0.0, value),
        )
        return out, after

    invalid = ~allowed_moves(config, game, states)
    if config.mcts == "gumbel":
        return mctx.gumbel_muzero_policy(
            params,
            key,
            root,
            recurrent,
            num_simulations,
            invalid_actions=invalid,
            max_num_considered_actions=config.max_considered_actions,
            gumbel_scale=1.0 if explore else 0.0,
            qtransform=completed_q,
        )
    if explore:
        assert move_number is not None
        temperature = jnp.where(move_number < config.temperature_moves, 1.0, 0.0)[:, None]
        fraction = config.dirichlet_fraction
    else:
        temperature, fraction = jnp.zeros(()), 0.0
    return mctx.muzero_policy(
        params,
        key,
        root,
        recurrent,
        num_simulations,
        invalid_actions=invalid,
        dirichlet_fraction=fraction,
        dirichlet_alpha=config.dirichlet_alpha,
        temperature=temperature,
        qtransform=bounded_q,
    )


def act(
    config: AlphaZeroConfig,
    game: GameEnv,
    state: AlphaZeroState,
    states: Any,
    key: jax.Array,
    explore: bool,
    move_number: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The moves in the positions `states` `[B]`, and the search's policy targets `[B, A]`."""
    simulations = config.num_simulations if explore else config.eval_simulations
    search_key, sample_key = jax.random.split(key)
    out = search(config, game, state.params, states, search_key, simulations, explore, move_number)
    action = out.action
    if explore:
        assert move_number is not None
        policy_key, random_key = jax.random.split(sample_key)
        if config.mcts == "gumbel":  # the opening moves sampled from the improved policy
            sampled = jax.random.categorical(policy_key, jnp.log(out.action_weights), axis=-1)
            action = jnp.where(move_number < config.temperature_moves, sampled, action)
        legal = jnp.where(allowed_moves(config, game, states), 0.0, -jnp.inf)
        uniform = jax.random.categorical(random_key, legal, axis=-1)
        action = jnp.where(move_number < config.random_opening_moves, uniform, action)
    return action, out.action_weights


# ----- learning -----


def loss(
    params: Any, config: AlphaZeroConfig, spec: EnvSpec, batch: Batch
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """l = (z - v)^2 - pi^T log p + c ||theta||^2, averaged over the batch."""
    logits, value = predict(config, spec, params, batch.obs)
    log_p = jax.nn.log_softmax(masked_logits(logits, batch.legal))
    policy_loss = -jnp.sum(jnp.where(batch.policy > 0, batch.policy * log_p, 0.0), -1).mean()
    value_loss = jnp.mean((batch.value - value) ** 2)
    kernels = [w for path, w in jax.tree.leaves_with_path(params) if "kernel" in str(path[-1])]
    l2 = jnp.sum(jnp.stack([jnp.sum(w**2) for w in kernels]))
    total = value_loss + policy_loss + config.weight_decay * l2
    entropy = -jnp.sum(jnp.where(batch.legal, jnp.exp(log_p) * log_p, 0.0), -1).mean()
    return total, {
        "loss": total,
        "value_loss": value_loss,
        "policy_loss": policy_loss,
        "l2": l2,
        "policy_entropy": entropy,
    }


def learn(
    config: AlphaZeroConfig, spec: EnvSpec, state: AlphaZeroState, batch: Batch
) -> tuple[AlphaZeroState, dict[str, jax.Array]]:
    """One gradient step on a batch of positions."""
    grads, metrics = jax.grad(loss, has_aux=True)(state.params, config, spec, batch)
    lr = step_size(config, state)
    clip, adam = state.opt_state
    adam.hyperparams["learning_rate"] = lr
    updates, opt_state = optimizer(config).update(grads, (clip, adam), state.params)
    params = optax.apply_updates(state.params, updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["learning_rate"] = lr
    return state.replace(params=params, opt_state=opt_state, steps=state.steps + 1), metrics
