"""The algorithms, one module each, and the registry that names them.

Each module satisfies its family's protocol (`bellman.contracts`); its registry entry declares
what the driver may use besides: presets (data files in `bellman/presets`), the preset an env
gets, settings that follow from the env, a value table to plot.
"""

from __future__ import annotations

from bellman.algos import (
    a2c,
    alphazero,
    bc,
    cql,
    dagger,
    ddpg,
    dqn,
    es,
    gail,
    iql,
    mbpo,
    mpc,
    muzero,
    pets,
    ppo,
    ram,
    reinforce,
    sac,
    tabular,
    td3bc,
)
from bellman.contracts import (
    AdversarialAlgorithm,
    AlgoInfo,
    ControlAlgorithm,
    EvolutionAlgorithm,
    LearnsFromData,
    OfflineAlgorithm,
    OffPolicyAlgorithm,
    OnPolicyAlgorithm,
    SelfPlayAlgorithm,
    TabularAlgorithm,
    UnrollAlgorithm,
)
from bellman.errors import ConfigError, UnknownNameError, closest
from bellman.presets import Presets

__all__ = [
    "ADVERSARIAL",
    "ALGOS",
    "CONTROL",
    "DAGGER",
    "EVOLUTION",
    "OFFLINE",
    "OFF_POLICY",
    "ON_POLICY",
    "SELF_PLAY",
    "TABULAR",
    "UNROLL",
    "AlgoInfo",
    "get",
]

# The modules of each family, typed by its protocol: the type checker holds every module to its
# family's contract (and tests/test_contracts.py checks each registered name at run time).
ON_POLICY: tuple[OnPolicyAlgorithm, ...] = (ppo, a2c, reinforce)
TABULAR: tuple[TabularAlgorithm, ...] = (tabular,)
OFF_POLICY: tuple[OffPolicyAlgorithm, ...] = (dqn, ddpg, sac, pets, mbpo)
SELF_PLAY: tuple[SelfPlayAlgorithm, ...] = (alphazero,)
UNROLL: tuple[UnrollAlgorithm, ...] = (muzero,)
CONTROL: tuple[ControlAlgorithm, ...] = (mpc,)
EVOLUTION: tuple[EvolutionAlgorithm, ...] = (es,)
OFFLINE: tuple[OfflineAlgorithm, ...] = (bc, td3bc, cql, iql, ram)
DAGGER: tuple[LearnsFromData, ...] = (dagger,)
ADVERSARIAL: tuple[AdversarialAlgorithm, ...] = (gail,)


def _tabular(method: str, summary: str, **defaults: object) -> AlgoInfo:
    return AlgoInfo(
        method,
        tabular,
        "tabular",
        summary,
        defaults={"method": method, **defaults},
        values_and_policy=tabular.values_and_policy,
    )


ALGOS: dict[str, AlgoInfo] = {
    "ppo": AlgoInfo(
        "ppo",
        ppo,
        "on_policy",
        "Proximal Policy Optimization (Schulman et al., 2017), clipped or adaptive-KL objective",
        presets=Presets("ppo", ppo.PPOConfig),
        preset_for=ppo.preset_for,
    ),
    "a2c": AlgoInfo(
        "a2c", a2c, "on_policy", "synchronous advantage actor-critic (Mnih et al., 2016)"
    ),
    "reinforce": AlgoInfo(
        "reinforce",
        reinforce,
        "on_policy",
        "Monte-Carlo policy gradient (Williams, 1992); reward-to-go and baselines as options",
        fit_to_env=reinforce.fit_to_env,
    ),
    "dqn": AlgoInfo(
        "dqn",
        dqn,
        "off_policy",
        "Deep Q-Network with replay and a target network (Mnih et al., 2015); Double, dueling, "
        "n-step, prioritised as options",
        presets=Presets("dqn", dqn.DQNConfig),
        preset_for=dqn.preset_for,
    ),
    "ddpg": AlgoInfo(
        "ddpg",
        ddpg,
        "off_policy",
        "Deep Deterministic Policy Gradient (Lillicrap et al., 2016), Gaussian or OU noise",
        presets=Presets("ddpg", ddpg.DDPGConfig),
        preset_for=ddpg.preset_for,
    ),
    "td3": AlgoInfo(
        "td3",
        ddpg,
        "off_policy",
        "Twin Delayed DDPG (Fujimoto et al., 2018): twin critics, target smoothing, delayed actor",
        defaults=ddpg.TD3_DEFAULTS,
        presets=Presets("ddpg", ddpg.DDPGConfig),
        preset_for=ddpg.preset_for,
    ),
    "sac": AlgoInfo(
        "sac",
        sac,
        "off_policy",
        "Soft Actor-Critic (Haarnoja et al., 2018): twin soft critics, tanh-Gaussian actor, "
        "tuned temperature",
        presets=Presets("sac", sac.SACConfig),
        preset_for=sac.preset_for,
    ),
    "pets": AlgoInfo(
        "pets",
        pets,
        "off_policy",
        "PETS (Chua et al., 2018): an ensemble of Gaussian networks learns the dynamics and the "
        "reward; CEM plans through it with trajectory sampling",
    ),
    "mbpo": AlgoInfo(
        "mbpo",
        mbpo,
        "off_policy",
        "MBPO (Janner et al., 2019): SAC on short rollouts branched from real states through a "
        "learned ensemble, mixed with real data",
    ),
    "alphazero": AlgoInfo(
        "alphazero",
        alphazero,
        "self_play",
        "AlphaZero (Silver et al., 2018): self-play with MCTS (mctx: Gumbel or PUCT) through the "
        "game's rules, a residual policy-value network",
        presets=Presets("alphazero", alphazero.AlphaZeroConfig),
        preset_for=alphazero.preset_for,
    ),
    "muzero": AlgoInfo(
        "muzero",
        muzero,
        "unroll",
        "MuZero (Schrittwieser et al., 2020): MCTS (mctx: Gumbel or PUCT) through a learned "
        "model, on single-agent envs and two-player games",
        presets=Presets("muzero", muzero.MuZeroConfig),
        preset_for=muzero.preset_for,
    ),
    "mpc": AlgoInfo(
        "mpc",
        mpc,
        "control",
        "model predictive control with the env's own dynamics: CEM or MPPI over a receding "
        "horizon, nothing learned",
    ),
    "es": AlgoInfo(
        "es",
        es,
        "evolution",
        "evolution strategies (evosax): OpenAI-ES (Salimans et al., 2017), CMA-ES, SNES, PGPE, "
        "ARS (Mania et al., 2018) and SimpleGA on vmapped populations",
        fit_to_env=es.fit_to_env,
    ),
    "bc": AlgoInfo(
        "bc",
        bc,
        "offline",
        "behaviour cloning: supervised learning of a dataset's actions (cross-entropy or mean "
        "squared error)",
    ),
    "td3bc": AlgoInfo(
        "td3bc",
        td3bc,
        "offline",
        "TD3+BC (Fujimoto & Gu, 2021): TD3 with a behaviour-cloning term in the actor's loss, "
        "normalised observations",
    ),
    "cql": AlgoInfo(
        "cql",
        cql,
        "offline",
        "Conservative Q-Learning (Kumar et al., 2020): SAC (continuous) or DQN (discrete) with "
        "a penalty pushing down Q off the data",
    ),
    "iql": AlgoInfo(
        "iql",
        iql,
        "offline",
        "Implicit Q-Learning (Kostrikov et al., 2022): expectile regression of V, Q from V(s'), "
        "advantage-weighted regression of the policy",
    ),
    "ram": AlgoInfo(
        "ram",
        ram,
        "offline",
        "Recurrent Attention Model (Mnih et al., 2014): a classifier that sees an image through "
        "a few glimpses, their places chosen by REINFORCE",
        glimpse_paths=ram.glimpse_paths,
    ),
    "dagger": AlgoInfo(
        "dagger",
        dagger,
        "dagger",
        "DAgger (Ross et al., 2011): behaviour cloning on the learner's own states, labelled by "
        "an expert run queried online",
    ),
    "gail": AlgoInfo(
        "gail",
        gail,
        "adversarial",
        "GAIL (Ho & Ermon, 2016): PPO rewarded by a discriminator of the expert's state-action "
        "pairs from its own, never by the env",
    ),
    "q-learning": _tabular("q-learning", "tabular Q-learning, epsilon-greedy (Watkins, 1989)"),
    "sarsa": _tabular("sarsa", "tabular SARSA, on-policy TD control (Rummery & Niranjan, 1994)"),
    "expected-sarsa": _tabular(
        "expected-sarsa", "tabular Expected SARSA (van Seijen et al., 2009)"
    ),
    "td0": _tabular("td0", "tabular TD(0) prediction of the random policy (Sutton, 1988)"),
    "dyna-q": _tabular(
        "dyna-q",
        "tabular Dyna-Q (Sutton, 1990): Q-learning plus planning updates from a learned model; "
        "Dyna-Q+ with --kappa",
        planning_steps=5,
    ),
}


def get(name: str) -> AlgoInfo:
    """The algorithm registered as `name`, or UnknownNameError with the closest names."""
    if not isinstance(name, str):
        raise ConfigError(f"algo must be a name ({', '.join(ALGOS)}), not {name!r}")
    key = name.lower()
    if key not in ALGOS:
        raise UnknownNameError(f"unknown algorithm '{name}'" + closest(name, ALGOS))
    return ALGOS[key]
