"""MuZero (Schrittwieser et al., 2020): tree search through a learned model of the env.

Three functions, one network (`MuZeroNet`):

    s^0 = h(o_t)                      representation   -> `represent`
    s^k, r^k = g(s^{k-1}, a^k)        dynamics         -> `dynamics`
    p^k, v^k = f(s^k)                 prediction       -> `predict`

The loop, as the unroll runner (`bellman.runners.unroll`) drives it:

    repeat:
        in every env, search from s^0 = h(o_t) through g and f (MCTS)  -> `plan`
          act a_t, keep (o_t, a_t, u_{t+1}, pi_t, nu_t)               -> runner (trajectories)
        sample positions t; for k = 0..K the targets                   -> runner (`targets`)
          z_{t+k} = u_{t+k+1} + ... + gamma^{n-1} u_{t+k+n} + gamma^n nu_{t+k+n}
          u_{t+k}, pi_{t+k}
        minimise sum_k l^r(u_{t+k}, r^k) + l^v(z_{t+k}, v^k) + l^p(pi_{t+k}, p^k)
          + c ||theta||^2                                              -> `learn`, `loss`

The search is mctx's: Gumbel MuZero (Danihelka et al., 2022) by default, whose policy target is
the improved policy and which improves the policy with few simulations, or the paper's PUCT
(`mcts="puct"`, Dirichlet noise at the root, actions sampled from the visit counts). On a
two-player game (`bellman.envs.games`) the model plays both sides: every value is from the view
of the player to move, the search's discount is -1 and the value target is the game's outcome
(n spans the whole game); the legal moves are masked at the root only, as in the paper.

Rewards and values are predicted as categorical distributions over the integers -S..S of the
scaled value h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x (the paper's Atari form, `scale` and
`unscale`), targets spread over the two nearest integers (`two_hot`), trained by cross-entropy.
Hidden states are scaled to [0, 1] (min-max over their features), and the gradient into each
dynamics step is halved, as in the paper.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import mctx
import optax
from flax import struct

from bellman import config as cfg
from bellman.envs.spaces import Discrete, EnvSpec
from bellman.errors import EnvError
from bellman.nets import PatchConv, flatten_obs

Opponent = Literal["random", "minimax", "alphabeta", "mcts"]


@dataclass(frozen=True)
class MuZeroConfig:
    """MuZero's settings; the defaults suit CartPole on a CPU."""

    STATIC_FLOATS: ClassVar[tuple[str, ...]] = ("reanalyse", "consistency_weight")
    """`reanalyse` sizes the compiled program (the rows of a batch that are searched again);
    `consistency_weight` 0 leaves the consistency loss out of it."""

    num_envs: int = 8
    """Envs (or self-play games) per seed, side by side."""
    num_steps: int = 1
    """Steps of every env between two learning phases (an update takes num_envs * num_steps
    env steps)."""
    num_simulations: int = 16
    """Simulations of each search while acting."""
    mcts: Literal["gumbel", "puct"] = "gumbel"
    """gumbel: Gumbel MuZero's search, acting by Sequential Halving (with Gumbel noise) and
    learning the improved policy; puct: the paper's PUCT, learning the visit distribution."""
    max_considered_actions: int = 16
    """Gumbel: actions sampled at the root for Sequential Halving."""
    dirichlet_alpha: float = 0.25
    """PUCT: concentration of the Dirichlet noise added to the root's prior while acting."""
    dirichlet_fraction: float = 0.25
    """PUCT: weight of that noise in the root's prior."""
    temperature: float = 1.0
    """PUCT: actions are sampled from the visit counts at this temperature while acting."""
    random_opening_moves: int = 0
    """Games: the first moves of each self-play game are uniformly random legal moves (not in
    the paper), so that every opening is seen (see `alphazero`)."""
    eval_simulations: int = 16
    """Simulations of each search when the agent is evaluated (no noise, the best action)."""
    eval_opponent: Opponent = "random"
    """Games: the opponent of the evaluations (`bellman.envs.players`), as for alphazero."""
    eval_opponent_simulations: int = 400
    """Games: simulations of the pure-MCTS opponent."""
    discount: float = 0.997
    """gamma of the value targets and of the search (single-agent envs; a game's is -1)."""
    unroll_steps: int = 5
    """K: steps the model is unrolled in training."""
    td_steps: int = 10
    """n of the n-step value targets (single-agent envs; a game's target is its outcome)."""
    support_size: int = 20
    """S: rewards and values are categorical over the integers -S..S of h(x), so they reach
    |x| = h^{-1}(S) (S = 20: about 440; a game's +-1 needs S = 1)."""
    hidden_size: int = 128
    """Width of the layers of the three functions."""
    latent_size: int = 64
    """Features of a hidden state s^k."""
    channels: int = 16
    """Image observations (MinAtar, boards): channels of the representation's 3x3 convolution;
    vector observations go straight to its dense layers."""
    value_loss_weight: float = 0.25
    """Weight of the value loss (the paper's 0.25 with reanalyse, to avoid overfitting it)."""
    consistency_weight: float = 0.0
    """Weight of EfficientZero's temporal consistency loss (Ye et al., 2021; not in MuZero):
    1 - cos(s^k, h(o_{t+k})) for the unrolled steps inside the episode, the representation of
    the real observation held fixed, so that the model's states follow the env's (0: off)."""
    learning_rate: float = 1e-3
    """Adam step size at the start."""
    anneal_lr: bool = True
    """Decay the step size along a cosine to a tenth of it at the end of training (the paper
    decays it exponentially)."""
    weight_decay: float = 1e-4
    """c of the loss's L2 term c ||theta||^2 (the kernels)."""
    max_grad_norm: float = 5.0
    """Rescale each gradient so that its global norm is at most this."""
    batch_size: int = 256
    """Sampled positions (each unrolled K steps) per gradient step."""
    gradient_steps: int = 2
    """Gradient steps after each update's env steps (the defaults: one per 4 env steps)."""
    buffer_size: int = 100_000
    """Steps of trajectories kept (the newest, split evenly over the envs)."""
    learning_starts: int = 1_000
    """Env steps (summed over envs) taken before the first gradient step."""
    fresh_values: bool = True
    """Bootstrap the n-step value targets from the current network's value of o_{t+k+n} (no
    search), as EfficientZero and LightZero do with a target network, rather than from the value
    the search had when it acted (the paper). Single-agent envs (a game's target is its
    outcome)."""
    reanalyse: float = 0.0
    """MuZero Reanalyze: the fraction of each batch's rows whose policy targets and bootstrap
    values are recomputed by a search with the current network (0: the stored ones, from the
    search that acted)."""

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
            "max_considered_actions",
            "unroll_steps",
            "td_steps",
            "support_size",
            "hidden_size",
            "latent_size",
            "channels",
            "batch_size",
            "buffer_size",
        )
        cfg.at_least(self, 0, "gradient_steps", "learning_starts", "random_opening_moves")
        cfg.positive(self, "learning_rate", "max_grad_norm", "dirichlet_alpha")
        cfg.at_least(self, 0, "weight_decay", "temperature", "value_loss_weight")
        cfg.within(self, 0, 1, "dirichlet_fraction", "discount", "reanalyse")
        window = self.unroll_steps + self.td_steps + 1
        cfg.require(
            self.buffer_size // self.num_envs > window,
            f"buffer_size / num_envs ({self.buffer_size // self.num_envs:,} steps per env) must "
            f"exceed unroll_steps + td_steps + 1 = {window}",
        )


Config = MuZeroConfig
DEFAULT_STEPS = 100_000


class MuZeroState(struct.PyTreeNode):
    params: Any
    opt_state: Any
    steps: jax.Array
    """Gradient steps taken."""
    total_steps: int = struct.field(pytree_node=False)
    """Gradient steps the run plans (its step size anneals over them)."""


class Unroll(struct.PyTreeNode):
    """Sampled positions with K steps of actions and targets (leading axis: positions)."""

    obs: jax.Array
    """o_t."""
    next_obs: jax.Array
    """`[B, K, ...]` o_{t+1..t+K}, the targets of the consistency loss."""
    actions: jax.Array
    """`[B, K]` a_{t+1..t+K} (the actions taken; any action past the episode's end)."""
    rewards: jax.Array
    """`[B, K+1]` the reward targets u of steps 0..K (step 0's is unused)."""
    values: jax.Array
    """`[B, K+1]` the value targets z."""
    policies: jax.Array
    """`[B, K+1, A]` the policy targets pi."""
    reward_mask: jax.Array
    """`[B, K+1]` 1 where a step's reward target is known (0 at step 0, and past an episode cut
    by a time limit, where nothing is known)."""
    value_mask: jax.Array
    """`[B, K+1]` 1 where a value target is known (past a terminal state it is 0, and known)."""
    policy_mask: jax.Array
    """`[B, K+1]` 1 where a policy target exists (steps inside the episode)."""


# ----- values as categorical distributions -----

EPSILON = 0.001
"""eps of the scaling h (the paper's)."""


def scale(x: jax.Array) -> jax.Array:
    """h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x (Pohlen et al., 2018)."""
    return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + EPSILON * x


def unscale(y: jax.Array) -> jax.Array:
    """h^{-1}(y), exactly: ((sqrt(1 + 4 eps (|y| + 1 + eps)) - 1) / (2 eps))^2 - 1, the root
    written without the cancellation of its difference (float32 would lose 1e-4)."""
    a = jnp.abs(y) + 1.0 + EPSILON
    root = 2.0 * a / (jnp.sqrt(1.0 + 4.0 * EPSILON * a) + 1.0)
    return jnp.sign(y) * (root**2 - 1.0)


def two_hot(x: jax.Array, support: int) -> jax.Array:
    """`[..., 2S+1]`: h(x), clipped to [-S, S], as weights on its two nearest integers (their
    mean is h(x))."""
    y = jnp.clip(scale(x), -support, support) + support
    low = jnp.floor(y)
    upper = y - low
    low_i = low.astype(jnp.int32)
    size = 2 * support + 1
    return (
        jax.nn.one_hot(low_i, size) * (1.0 - upper)[..., None]
        + jax.nn.one_hot(jnp.minimum(low_i + 1, size - 1), size) * upper[..., None]
    )


def expected(logits: jax.Array) -> jax.Array:
    """The scalar h^{-1}(E[y]) of categorical logits over -S..S."""
    support = (logits.shape[-1] - 1) // 2
    y = jax.nn.softmax(logits) @ jnp.arange(-support, support + 1, dtype=jnp.float32)
    return unscale(y)


# ----- the network -----


def min_max(s: jax.Array) -> jax.Array:
    """A hidden state scaled to [0, 1] over its features (the paper's normalisation)."""
    low = s.min(axis=-1, keepdims=True)
    high = s.max(axis=-1, keepdims=True)
    return (s - low) / jnp.maximum(high - low, 1e-5)


class Block(nn.Module):
    """Dense -> LayerNorm -> relu."""

    size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.relu(nn.LayerNorm()(nn.Dense(self.size)(x)))


class Representation(nn.Module):
    obs_shape: tuple[int, ...]
    hidden_size: int
    latent_size: int
    channels: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        if len(self.obs_shape) == 3:  # an image: one 3x3 convolution first (MinAtar's DQN)
            x = nn.relu(PatchConv(self.channels, 3)(x))
            x = x.reshape((*x.shape[:-3], -1))
        else:
            x = flatten_obs(x, self.obs_shape)
        x = Block(self.hidden_size)(x)
        return min_max(nn.Dense(self.latent_size)(Block(self.hidden_size)(x)))


class Dynamics(nn.Module):
    num_actions: int
    hidden_size: int
    latent_size: int
    support: int

    @nn.compact
    def __call__(self, s: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = jnp.concatenate([s, jax.nn.one_hot(action, self.num_actions)], axis=-1)
        x = Block(self.hidden_size)(Block(self.hidden_size)(x))
        following = min_max(nn.Dense(self.latent_size)(x) + s)  # a residual step
        reward = nn.Dense(2 * self.support + 1, kernel_init=nn.initializers.zeros)(x)
        return following, reward


class Prediction(nn.Module):
    num_actions: int
    hidden_size: int
    support: int

    @nn.compact
    def __call__(self, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = Block(self.hidden_size)(Block(self.hidden_size)(s))
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(x)
        value = nn.Dense(2 * self.support + 1, kernel_init=nn.initializers.zeros)(x)
        return logits, value


class MuZeroNet(nn.Module):
    """h, g and f: `represent`, `dynamics`, `predict` (`__call__` runs all three, to initialise)."""

    obs_shape: tuple[int, ...]
    num_actions: int
    hidden_size: int
    latent_size: int
    channels: int
    support: int

    def setup(self) -> None:
        self.h = Representation(self.obs_shape, self.hidden_size, self.latent_size, self.channels)
        self.g = Dynamics(self.num_actions, self.hidden_size, self.latent_size, self.support)
        self.f = Prediction(self.num_actions, self.hidden_size, self.support)

    def represent(self, obs: jax.Array) -> jax.Array:
        return cast(jax.Array, self.h(obs))

    def dynamics(self, s: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        return cast(tuple[jax.Array, jax.Array], self.g(s, action))

    def predict(self, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        return cast(tuple[jax.Array, jax.Array], self.f(s))

    def __call__(self, obs: jax.Array) -> Any:
        s = self.represent(obs)
        following, reward = self.dynamics(s, jnp.zeros(s.shape[:-1], jnp.int32))
        return self.predict(following), reward


def network(config: MuZeroConfig, spec: EnvSpec) -> MuZeroNet:
    assert isinstance(spec.action_space, Discrete)
    return MuZeroNet(
        tuple(spec.obs_shape),
        spec.action_space.n,
        config.hidden_size,
        config.latent_size,
        config.channels,
        config.support_size,
    )


def represent(config: MuZeroConfig, spec: EnvSpec, params: Any, obs: jax.Array) -> jax.Array:
    return cast(jax.Array, network(config, spec).apply(params, obs, method=MuZeroNet.represent))


def dynamics(
    config: MuZeroConfig, spec: EnvSpec, params: Any, s: jax.Array, action: jax.Array
) -> tuple[jax.Array, jax.Array]:
    net = network(config, spec)
    return cast(tuple[jax.Array, jax.Array], net.apply(params, s, action, method=net.dynamics))


def predict(
    config: MuZeroConfig, spec: EnvSpec, params: Any, s: jax.Array
) -> tuple[jax.Array, jax.Array]:
    net = network(config, spec)
    return cast(tuple[jax.Array, jax.Array], net.apply(params, s, method=net.predict))


# ----- the registry's functions -----


def preset_for(spec: EnvSpec) -> str | None:
    """The preset of a game (its id) or of MinAtar's images, where there is one."""
    if spec.id in PRESET_GAMES:
        return spec.id
    return "minatar" if spec.id.endswith("-MinAtar") else None


PRESET_GAMES = ("tic_tac_toe",)


def check_env(config: MuZeroConfig, spec: EnvSpec) -> None:
    """MuZero needs finitely many actions; a reference opponent plays its own game."""
    if not isinstance(spec.action_space, Discrete):
        raise EnvError(
            f"muzero searches over finitely many actions; {spec.id}'s action space is "
            f"{spec.action_space}: train sac or td3 on it"
        )
    needs = {"minimax": "tic_tac_toe", "alphabeta": "connect_four"}.get(config.eval_opponent)
    if needs is not None and spec.id != needs:
        raise EnvError(
            f"eval_opponent={config.eval_opponent} plays {needs} only; {spec.id}'s opponents are "
            "random and mcts"
        )


def init(key: jax.Array, config: MuZeroConfig, spec: EnvSpec, total_updates: int) -> MuZeroState:
    obs = jnp.zeros((1, *spec.obs_shape), jnp.float32)
    params = network(config, spec).init(key, obs)
    total = total_updates * config.gradient_steps
    return MuZeroState(params, optimizer(config).init(params), jnp.zeros((), jnp.int32), total)


def optimizer(config: MuZeroConfig) -> optax.GradientTransformation:
    """Adam with gradient clipping, its step size given at each step (`step_size`)."""
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rate),
    )


def step_size(config: MuZeroConfig, state: MuZeroState) -> jax.Array:
    """The step size after `state.steps` of the run's `state.total_steps` gradient steps."""
    if not config.anneal_lr:
        return jnp.asarray(config.learning_rate, jnp.float32)
    progress = jnp.clip(state.steps / max(state.total_steps, 1), 0.0, 1.0)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))


def greedy(config: MuZeroConfig, spec: EnvSpec, state: MuZeroState, obs: jax.Array) -> jax.Array:
    """The prediction function's most likely action, without search."""
    logits, _ = predict(config, spec, state.params, represent(config, spec, state.params, obs))
    return jnp.argmax(logits, axis=-1)


def value(config: MuZeroConfig, spec: EnvSpec, state: MuZeroState, obs: jax.Array) -> jax.Array:
    """v^0 = f(h(o)) as a scalar, without search."""
    params = state.params
    _, logits = predict(config, spec, params, represent(config, spec, params, obs))
    return expected(logits)


# ----- the search -----

# A game's values lie in [-1, 1]: its searches normalise Q with these bounds (see alphazero);
# single-agent rewards have no known scale, so there Q is normalised by the tree's own extremes.
bounded_q = functools.partial(mctx.qtransform_by_min_max, min_value=-1.0, max_value=1.0)
completed_q = functools.partial(
    mctx.qtransform_completed_by_mix_value, rescale_values=False, value_scale=0.05
)


class Plan(struct.PyTreeNode):
    """A search's answer for `[B]` observations."""

    action: jax.Array
    policy: jax.Array
    """`[B, A]` the policy target: the improved policy (Gumbel) or the visit distribution."""
    value: jax.Array
    """`[B]` nu: the search's value of the root, the n-step targets' bootstrap."""


def plan(
    config: MuZeroConfig,
    spec: EnvSpec,
    state: MuZeroState,
    obs: jax.Array,
    legal: jax.Array,
    key: jax.Array,
    explore: bool,
    two_player: bool,
    simulations: int | None = None,
) -> Plan:
    """MCTS through the learned model from observations `[B, ...]` with legal actions
    `[B, A]`. The discount is gamma, or -1 on a two-player game (values are for the player to
    move)."""
    discount = -1.0 if two_player else config.discount
    params = state.params
    if simulations is None:
        simulations = config.num_simulations if explore else config.eval_simulations
    s = represent(config, spec, params, obs)
    logits, v = predict(config, spec, params, s)
    root = mctx.RootFnOutput(prior_logits=logits, value=expected(v), embedding=s)

    def recurrent(p: Any, _: jax.Array, action: jax.Array, s: jax.Array) -> Any:
        following, reward = dynamics(config, spec, p, s, action)
        logits, v = predict(config, spec, p, following)
        out = mctx.RecurrentFnOutput(
            reward=expected(reward),
            discount=jnp.full(action.shape, discount, jnp.float32),
            prior_logits=logits,
            value=expected(v),
        )
        return out, following

    invalid = ~legal
    if config.mcts == "gumbel":
        qtransform = completed_q if two_player else mctx.qtransform_completed_by_mix_value
        out = mctx.gumbel_muzero_policy(
            params,
            key,
            root,
            recurrent,
            simulations,
            invalid_actions=invalid,
            max_num_considered_actions=config.max_considered_actions,
            gumbel_scale=1.0 if explore else 0.0,
            qtransform=qtransform,
        )
    else:
        out = mctx.muzero_policy(
            params,
            key,
            root,
            recurrent,
            simulations,
            invalid_actions=invalid,
            dirichlet_fraction=config.dirichlet_fraction if explore else 0.0,
            dirichlet_alpha=config.dirichlet_alpha,
            temperature=config.temperature if explore else 0.0,
            qtransform=bounded_q if two_player else mctx.qtransform_by_parent_and_siblings,
        )
    return Plan(out.action, out.action_weights, out.search_tree.summary().value)


def evaluation_action(
    config: MuZeroConfig, spec: EnvSpec, state: MuZeroState, obs: jax.Array, key: jax.Array
) -> jax.Array:
    """The action a run reports its return for: the search's best (`eval_simulations`, no
    noise), on a single-agent env."""
    legal = jnp.ones((obs.shape[0], spec.action_space.n), bool)  # type: ignore[union-attr]
    return plan(config, spec, state, obs, legal, key, False, False).action


evaluation_memory = None


def act(
    config: MuZeroConfig,
    game: Any,
    state: MuZeroState,
    states: Any,
    key: jax.Array,
    explore: bool,
    move_number: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """A game's moves in the pgx positions `states` `[B]` and the search's policy (the players
    of `bellman arena`, `bellman play` and the game's evaluation)."""
    out = plan(
        config,
        game.spec,
        state,
        states.observation,
        states.legal_action_mask,
        key,
        explore,
        True,
    )
    return out.action, out.policy


def check_game(env: Any) -> None:
    """MuZero plays games and single-agent envs alike."""


# ----- learning -----


def cross_entropy(logits: jax.Array, target: jax.Array) -> jax.Array:
    return -jnp.sum(target * jax.nn.log_softmax(logits), axis=-1)


def scale_gradient(x: jax.Array, factor: float) -> jax.Array:
    """x in the forward pass; its gradient times `factor` in the backward pass."""
    return x * factor + jax.lax.stop_gradient(x) * (1.0 - factor)


def loss(
    params: Any, config: MuZeroConfig, spec: EnvSpec, batch: Unroll
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """sum_k l^r + w_v l^v + l^p over the K-step unroll (steps k >= 1 weighted 1/K), averaged
    over the batch, plus c ||theta||^2."""
    k_steps = batch.actions.shape[1]
    s = represent(config, spec, params, batch.obs)
    logits, v = predict(config, spec, params, s)
    policy_logits, value_logits, reward_logits = [logits], [v], [jnp.zeros_like(v)]
    states = []
    for k in range(k_steps):
        s, r = dynamics(config, spec, params, scale_gradient(s, 0.5), batch.actions[:, k])
        logits, v = predict(config, spec, params, s)
        states.append(s)
        policy_logits.append(logits)
        value_logits.append(v)
        reward_logits.append(r)
    stack = lambda xs: jnp.stack(xs, axis=1)  # [B, K+1, ...]
    support = config.support_size
    value_ce = cross_entropy(stack(value_logits), two_hot(batch.values, support))
    reward_ce = cross_entropy(stack(reward_logits), two_hot(batch.rewards, support))
    policy_ce = cross_entropy(stack(policy_logits), batch.policies)
    step_weight = jnp.concatenate([jnp.ones(1), jnp.full(k_steps, 1.0 / k_steps)])
    mean = lambda x, mask: jnp.mean(jnp.sum(x * mask * step_weight, axis=1))
    value_loss = mean(value_ce, batch.value_mask)
    reward_loss = mean(reward_ce, batch.reward_mask)
    policy_loss = mean(policy_ce, batch.policy_mask)
    kernels = [w for path, w in jax.tree.leaves_with_path(params) if "kernel" in str(path[-1])]
    l2 = jnp.sum(jnp.stack([jnp.sum(w**2) for w in kernels]))
    total = (
        config.value_loss_weight * value_loss + reward_loss + policy_loss + config.weight_decay * l2
    )
    metrics = {}
    if config.consistency_weight > 0:
        b = batch.next_obs.shape[0]
        flat = batch.next_obs.reshape((b * k_steps, *batch.next_obs.shape[2:]))
        real = jax.lax.stop_gradient(represent(config, spec, params, flat)).reshape(b, k_steps, -1)
        model = jnp.stack(states, axis=1)
        cos = jnp.sum(model * real, -1) / (
            jnp.linalg.norm(model, axis=-1) * jnp.linalg.norm(real, axis=-1) + 1e-8
        )
        inside = batch.policy_mask[:, 1:]
        consistency = jnp.mean(jnp.sum((1.0 - cos) * inside, axis=1) / k_steps)
        total = total + config.consistency_weight * consistency
        metrics["consistency_loss"] = consistency
    probs = jax.nn.softmax(policy_logits[0])
    entropy = -jnp.sum(probs * jax.nn.log_softmax(policy_logits[0]), -1).mean()
    value_error = jnp.abs(expected(value_logits[0]) - batch.values[:, 0]).mean()
    return total, {
        **metrics,
        "loss": total,
        "value_loss": value_loss,
        "reward_loss": reward_loss,
        "policy_loss": policy_loss,
        "l2": l2,
        "policy_entropy": entropy,
        "value_error": value_error,
    }


def learn(
    config: MuZeroConfig, spec: EnvSpec, state: MuZeroState, batch: Unroll
) -> tuple[MuZeroState, dict[str, jax.Array]]:
    """One gradient step on a batch of unrolls."""
    grads, metrics = jax.grad(loss, has_aux=True)(state.params, config, spec, batch)
    lr = step_size(config, state)
    clip, adam = state.opt_state
    adam.hyperparams["learning_rate"] = lr
    updates, opt_state = optimizer(config).update(grads, (clip, adam), state.params)
    params = optax.apply_updates(state.params, updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["learning_rate"] = lr
    return state.replace(params=params, opt_state=opt_state, steps=state.steps + 1), metrics
