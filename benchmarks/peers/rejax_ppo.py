"""rejax PPO on CartPole-v1 with the W1 settings; prints one JSON line (run in rejax's venv).

rejax 0.1.3 has no learning-rate annealing and clips gradients element-wise (optax.clip);
both are as the library does them, and noted in RESULTS.md.
"""

import argparse
import json
import time

import jax
import numpy as np
from rejax import PPO


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    algo = PPO.create(
        env="CartPole-v1",
        num_envs=4,
        num_steps=128,
        num_epochs=4,
        num_minibatches=4,
        learning_rate=2.5e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        total_timesteps=args.steps,
        eval_freq=args.steps,  # a single evaluation, at the end
        skip_initial_evaluation=True,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
    )
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    train = jax.jit(jax.vmap(algo.train))
    compile_start = time.perf_counter()
    compiled = train.lower(keys).compile()
    run_start = time.perf_counter()
    _, (_, returns) = compiled(keys)
    returns = np.asarray(jax.block_until_ready(returns))
    end = time.perf_counter()
    per_seed = returns[:, -1, :].mean(axis=-1)  # the final evaluation's 128 episodes
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
                "eval": "stochastic policy, 128 episodes (rejax's own evaluation)",
            }
        )
    )


if __name__ == "__main__":
    main()
