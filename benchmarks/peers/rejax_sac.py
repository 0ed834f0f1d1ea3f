"""rejax SAC on Pendulum-v1 with workload W3's settings, as close as rejax can take them; prints
one JSON line (run in rejax's venv).

rejax steps `num_envs` envs and takes `num_epochs` gradient steps per iteration: W3's one env
and one gradient step per env step are `num_envs=1, num_epochs=1`. It learns once its step count
exceeds `fill_buffer`, as SB3 does past `learning_starts`, so `fill_buffer=1000`; but it has no
uniformly random warm-up, its first 1000 steps act with the untrained policy. Its target update
is `target <- polyak * target + (1 - polyak) * online`, every `target_update_freq=1` steps, so
W3's tau 0.005 is `polyak=0.995`. Adam at `learning_rate=1e-3` serves the actor, the critics and
the entropy coefficient alike, as in SB3 (and no gradient clipping, `max_grad_norm` stays inf).
The entropy coefficient always starts at 1 and is tuned towards minus the action dimension on a
continuous action space (`target_entropy_ratio` only applies to discrete ones), which is SB3's
"auto"; rejax's loss is `-alpha * (log_prob + target)` where SB3's is `-log_alpha * (...)`, the
same fixed point. rejax 0.1.3's SAC takes its hidden sizes from a top-level `hidden_layer_sizes`
(64x64 unless given, whatever `agent_kwargs` say) and the activation from `agent_kwargs`, so
`hidden_layer_sizes=(256, 256)` and ReLU give W3's actor and its two critics (`num_critics=2`).
Left as rejax has them: gymnax's Pendulum ends at step 200 with `done`, which rejax treats as
terminal (SB3 bootstraps through the time limit), the policy's log std is clipped to [-10, 2]
(SB3: [-20, 2]), and each gradient step updates the actor, then the critics, then the
coefficient (SB3: coefficient, critics, actor). rejax draws each minibatch without replacement
by a weighted `jax.random.choice` over the buffer's whole capacity, so every gradient step costs
time in proportion to `buffer_size` (SB3 draws indices with replacement): `--buffer-size` shows
how much of rejax's time that is (a smaller buffer than the steps run also changes the run).

The final return is rejax's own evaluation loop over 128 episodes, but of the deterministic
policy (the squashed mean action, as SB3 evaluates), where rejax's SAC would sample: `SACMean`
only changes the evaluation policy.
"""

import argparse
import json
import time

import jax
import numpy as np
from jax import numpy as jnp
from rejax import SAC


class SACMean(SAC):
    def make_act(self, ts):
        def act(obs, rng):
            obs = jnp.expand_dims(obs, 0)
            dist = self.actor.apply(ts.actor_ts.params, obs, method="_action_dist")
            action = self.actor.action_loc + jnp.tanh(dist.mean()) * self.actor.action_scale
            return jnp.squeeze(action)

        return act


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--buffer-size", type=int, default=1_000_000)
    args = parser.parse_args()

    start = time.perf_counter()
    algo = SACMean.create(
        env="Pendulum-v1",
        learning_rate=1e-3,
        batch_size=256,
        buffer_size=args.buffer_size,
        fill_buffer=1000,
        gamma=0.99,
        num_envs=1,
        num_epochs=1,
        target_update_freq=1,
        polyak=0.995,
        num_critics=2,
        hidden_layer_sizes=(256, 256),
        agent_kwargs={"activation": "relu"},
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
                "eval": "deterministic policy, rejax's evaluation loop, 128 episodes",
            }
        )
    )


if __name__ == "__main__":
    main()
