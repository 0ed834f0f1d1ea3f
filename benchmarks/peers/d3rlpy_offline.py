"""d3rlpy's IQL or CQL on a bellman dataset (Minari's HDF5 layout, read with h5py), one seed, N
gradient steps on the CPU; prints one JSON line with the updates per second of its `fit` call.

    python d3rlpy_offline.py iql|cql DATASET_DIR N

Run in the d3rlpy venv (PyTorch 2.13 CPU, d3rlpy 2.8.1). The networks match bellman's defaults
for each algorithm: IQL 2 x 256 (d3rlpy's own default too), CQL 3 x 256 for actor and critics
(d3rlpy's default is 2 x 256); batch 256, Adam, the papers' other settings (d3rlpy's defaults:
IQL expectile 0.7, beta 3, two critics; CQL conservative weight 5, 10 sampled actions, actor
1e-4, critics 3e-4). Torch uses as many threads as the process may use cores (pin it with
taskset for one). Episodes' ends: terminations as terminals, truncations as timeouts.
"""

import json
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np


def read(path: Path) -> dict:
    """Every episode's steps: observations (without each episode's last), actions, rewards and
    the two end flags."""
    parts: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "term", "trunc")}
    with h5py.File(path / "data" / "main_data.hdf5", "r") as f:
        for name in sorted(f, key=lambda n: int(n.split("_")[-1])):
            episode = f[name]
            parts["obs"].append(np.asarray(episode["observations"])[:-1])
            parts["act"].append(np.asarray(episode["actions"]))
            parts["rew"].append(np.asarray(episode["rewards"]))
            parts["term"].append(np.asarray(episode["terminations"]))
            parts["trunc"].append(np.asarray(episode["truncations"]))
    return {k: np.concatenate(v) for k, v in parts.items()}


def main() -> None:
    import d3rlpy
    import torch
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory

    algo_name, path, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    torch.manual_seed(0)
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores it may run on, no more
    data = read(path)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["obs"].astype(np.float32),
        actions=data["act"].astype(np.float32),
        rewards=data["rew"].astype(np.float32),
        terminals=data["term"].astype(np.float32),
        timeouts=data["trunc"].astype(np.float32),
    )
    if algo_name == "iql":
        encoder = VectorEncoderFactory([256, 256])
        config = d3rlpy.algos.IQLConfig(
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            value_encoder_factory=encoder,
            batch_size=256,
        )
    else:
        encoder = VectorEncoderFactory([256, 256, 256])
        config = d3rlpy.algos.CQLConfig(
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            batch_size=256,
            conservative_weight=5.0,
            n_action_samples=10,
            actor_learning_rate=1e-4,
            critic_learning_rate=3e-4,
        )
    algo = config.create(device="cpu:0")
    start = time.perf_counter()
    algo.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,
        logger_adapter=NoopAdapterFactory(),
        show_progress=False,
        save_interval=steps + 1,
    )
    train_s = time.perf_counter() - start
    print(
        json.dumps(
            {
                "algo": algo_name,
                "steps": steps,
                "train_s": train_s,
                "updates_per_s": steps / train_s,
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
