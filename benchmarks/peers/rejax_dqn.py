"""rejax DQN on CartPole-v1 with workload W2's settings, as close as rejax can take them; prints
one JSON line (run in rejax's venv).

rejax steps `num_envs` envs and takes `num_epochs` gradient steps per iteration: W2's 128
gradient steps per 256 env steps become 2 envs and 1 gradient step per iteration (the same
ratio, spread evenly); its target update counts iterations, and `polyak=0` copies. rejax 0.1.3
builds its Q network with 64x64 hidden layers whatever `agent_kwargs` say, so `DQN256` rebuilds
it with W2's 256x256.
"""

import argparse
import json
import time

import flax.linen as nn
import jax
import numpy as np
from rejax import DQN
from rejax.networks import DiscreteQNetwork, EpsilonGreedyPolicy


class DQN256(DQN):
    @classmethod
    def create_agent(cls, config, env, env_params):
        config.pop("agent", None)
        config.pop("agent_kwargs", None)
        agent = EpsilonGreedyPolicy(DiscreteQNetwork)(
            hidden_layer_sizes=(256, 256),
            action_dim=env.action_space(env_params).n,
            activation=nn.relu,
        )
        return {"agent": agent}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    algo = DQN256.create(
        env="CartPole-v1",
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        fill_buffer=1000,
        gamma=0.99,
        num_envs=2,
        num_epochs=1,
        target_update_freq=10,
        polyak=0.0,
        eps_start=1.0,
        eps_end=0.04,
        exploration_fraction=0.16,
        ddqn=False,
        total_timesteps=args.steps,
        eval_freq=args.steps,  # a single evaluation, at the end
        skip_initial_evaluation=True,
    )
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    train = jax.jit(jax.vmap(algo.train))
    compile_start = time.perf_counter()
    compiled = train.lower(keys).compile()
    run_start = time.perf_counter()
    _, (_, returns) = compiled(keys)
    returns = np.asarray(jax.block_until_ready(returns))
    end = time.perf_counter()
    per_seed = returns[:, -1, :].mean(axis=-1)
    print(
        json.dumps(
            {
                "library": "rejax",
                "seeds": args.seeds,
                "steps": args.steps,
                "compile_s": run_start - compile_start,
                "train_s": end - run_start,
                "setup_s": compile_start - start,
                "final_return_mean": float(per_seed.mean()),
                "final_return_per_seed": per_seed.tolist(),
                "eval": "rejax's own evaluation, 128 episodes",
            }
        )
    )


if __name__ == "__main__":
    main()
