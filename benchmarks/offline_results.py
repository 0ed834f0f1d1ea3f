"""Learning from data: imitation and offline RL, each a `bellman` command run here; writes
RESULTS.md's sections bc-cartpole, gail-cartpole, dagger-pendulum, dagger-llc, offline-pendulum,
offline-halfcheetah and offline-speed.

    python benchmarks/offline_results.py [--only bc,gail,dagger,dagger-llc,offline,halfcheetah,
                                                  speed] [--note "..."] [--algos bc,td3bc,...]

Experts, datasets and runs live in benchmarks/out/offline/ (made once, reused: delete a folder
to make it again); every figure is a normalised score, 100 (return - random) / (expert -
random), with the reference returns each dataset records (`bellman collect`: the uniformly random
policy's and the expert's greedy mean return over 100 episodes).

- bc: PPO's expert on CartPole-v1 (bellman's defaults, 500,000 steps), 10 of its greedy
  episodes recorded; behaviour cloning, 8 seeds.
- gail: GAIL from the same 10 episodes, 8 seeds; the env's reward is never used.
- dagger: SAC's expert on Pendulum-v1 (its pendulum preset); behaviour cloning on 1 to 32 of
  its greedy episodes (200 steps each), 4 seeds each, against DAgger with no demonstrations
  (each round 4 envs x 50 steps labelled), 4 seeds, evaluated every round: the normalised
  score against the expert-labelled steps, and the first count at which each reaches 90.
- dagger-llc: the same on LunarLanderContinuous-v3 (gymnasium's Box2D, the host backend), with
  SAC's expert trained there for 120,000 steps.
- offline: Pendulum-v1 datasets from SAC (expert: 50 episodes of the converged policy's
  stochastic actions; medium: 50 of a run stopped at about a third of the expert's score;
  medium-replay: that run's replay memory), BC, TD3+BC, CQL and IQL, 4 seeds each.
- halfcheetah: HalfCheetah-v5 datasets from SAC on the gymnasium backend (medium: a run stopped
  at 35,000 steps; medium-replay: its replay memory; expert: the same run trained on to 250,000),
  BC, TD3+BC, CQL and IQL, 4 seeds each.
- speed: IQL and CQL, bellman against d3rlpy 2.8.1 (PyTorch, its own venv), one seed each on
  the Pendulum medium-replay dataset: updates per second, and the wall time of 100,000 updates
  for bellman's IQL (the others time fewer: see SPEED_STEPS).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from run import HERE, OUT, ROOT, machine, peer_python, write_section

BASE = OUT / "offline"
BELLMAN = [sys.executable, "-m", "bellman"]


def rel(path: Path) -> str:
    """A path as the commands show it: relative to the repository (where they run)."""
    return str(path.relative_to(ROOT))


def bellman(*args: str) -> str:
    """Run a bellman command; its stdout."""
    result = subprocess.run([*BELLMAN, *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bellman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def train(tag: str, args: list[str], fresh: bool = True) -> dict:
    """A `bellman train` run in BASE/tag (reused unless `fresh`): its summary and records."""
    out = BASE / tag
    if fresh and out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    if not (out / "summary.json").exists():
        bellman("train", *args, "--out", rel(out), "--quiet")
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "tag": tag,
        "command": "bellman train " + " ".join(args),
        "wall_s": time.perf_counter() - start,
        "summary": json.loads((out / "summary.json").read_text()),
        "records": records,
    }


def collect(run: str, out: str, *args: str) -> dict:
    """`bellman collect` (once: an existing dataset is reused); its summary."""
    target = BASE / "datasets" / f"{out}-v0"
    if not target.exists():
        bellman("collect", rel(BASE / run), "--out", rel(target), *args, "--json")
    from bellman import datasets

    data = datasets.read(target)
    return {
        "path": rel(target),
        "episodes": data.episodes,
        "steps": len(data.transitions),
        "ref_min": data.ref_min_score,
        "ref_max": data.ref_max_score,
        "score": float(data.normalized(data.episode_returns).mean()),
    }


def wanted(tag: str, algo: str) -> bool:
    """Whether an offline run goes into its table: made already, or its algorithm is trained."""
    return algo in TRAIN or (BASE / tag / "summary.json").exists()


def score(run: dict, dataset: dict) -> np.ndarray:
    """The final normalised score of each seed."""
    returns = np.asarray(run["summary"]["final_return_per_seed"])
    return 100 * (returns - dataset["ref_min"]) / (dataset["ref_max"] - dataset["ref_min"])


def score_table(sets: dict, table: dict, algos: tuple[str, ...]) -> list[str]:
    """A markdown table, dataset by algorithm, of mean [interval] scores ("not run" where none)."""
    lines = [
        "| dataset (episodes, steps, its own score) | " + " | ".join(algos) + " |",
        "|---|" + "---:|" * len(algos),
    ]
    for name, data in sets.items():
        cells = [interval(np.asarray(table[name][a])) if a in table[name] else "not run"
                 for a in algos]  # fmt: skip
        lines.append(
            f"| {name} ({data['episodes']}, {data['steps']:,}, {data['score']:.1f}) | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def interval(values: np.ndarray) -> str:
    """Mean and a 95% bootstrap interval of the mean over seeds."""
    rng = np.random.default_rng(0)
    means = rng.choice(values, (10_000, len(values))).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return f"{values.mean():.1f} [{low:.1f}, {high:.1f}]"


def cartpole_expert() -> dict:
    train("ppo-cartpole-expert", ["ppo", "--env", "CartPole-v1", "--evals", "0"], fresh=False)
    return collect("ppo-cartpole-expert", "cartpole-expert-10", "--episodes", "10")


def bc(note: str, meta: dict) -> dict:
    data = cartpole_expert()
    run = train(
        "bc-cartpole",
        ["bc", "--env", "CartPole-v1", "--dataset", data["path"], "--seeds", "8", "--steps",
         "20000", "--evals", "10", "--eval-episodes", "20"],
    )  # fmt: skip
    scores = score(run, data)
    lines = [note, ""] if note else []
    lines += [
        f"PPO's expert (`bellman train ppo --env CartPole-v1`, bellman's defaults) recorded for "
        f"10 greedy episodes ({data['steps']:,} steps) with `bellman collect`; reference returns "
        f"{data['ref_min']:.1f} (random) and {data['ref_max']:.1f} (the expert, 100 episodes).",
        "",
        "| command | normalised score per seed | mean [95% interval] | wall s |",
        "|---|---|---:|---:|",
        f"| `{run['command']}` | {', '.join(f'{s:.1f}' for s in scores)} | "
        f"{interval(scores)} | {run['summary']['wall_s']:.1f} |",
        "",
        f"- Target: a normalised score >= 95 over 8 seeds: "
        f"{'met' if scores.mean() >= 95 else 'not met'} ({scores.mean():.1f}).",
    ]
    write_section("bc-cartpole", "\n".join(lines), meta, "python benchmarks/offline_results.py")
    return {"dataset": data, "run": run, "scores": scores.tolist()}


def gail(note: str, meta: dict) -> dict:
    data = cartpole_expert()
    run = train(
        "gail-cartpole",
        ["gail", "--env", "CartPole-v1", "--dataset", data["path"], "--seeds", "8", "--steps",
         "300000", "--evals", "10", "--eval-episodes", "20"],
    )  # fmt: skip
    scores = score(run, data)
    curve = [
        (r["step"], float(np.mean(100 * (np.asarray(r["eval_return"]) - data["ref_min"])
                                  / (data["ref_max"] - data["ref_min"]))))
        for r in run["records"] if "eval_return" in r
    ]  # fmt: skip
    lines = [note, ""] if note else []
    lines += [
        "GAIL (PPO's defaults as the learner, the discriminator's reward -log(1 - D)) from the "
        "10 expert episodes of bc-cartpole; the env's reward is never seen by the learner.",
        "",
        "| command | normalised score per seed | mean [95% interval] | wall s |",
        "|---|---|---:|---:|",
        f"| `{run['command']}` | {', '.join(f'{s:.1f}' for s in scores)} | "
        f"{interval(scores)} | {run['summary']['wall_s']:.1f} |",
        "",
        "| env steps | " + " | ".join(f"{s:,}" for s, _ in curve) + " |",
        "|---|" + "---:|" * len(curve),
        "| normalised, mean of 8 | " + " | ".join(f"{v:.1f}" for _, v in curve) + " |",
        "",
        f"- Target: >= 90 without rewards: {'met' if scores.mean() >= 90 else 'not met'} "
        f"({scores.mean():.1f}).",
    ]
    write_section("gail-cartpole", "\n".join(lines), meta, "python benchmarks/offline_results.py")
    return {"run": run, "scores": scores.tolist(), "curve": curve}


PENDULUM_EXPERT = ["sac", "--env", "Pendulum-v1", "--steps", "20000", "--evals", "0"]
LLC_EXPERT = ["sac", "--env", "LunarLanderContinuous-v3", "--steps", "120000",
              "--learning-rate", "7.3e-4", "--tau", "0.01", "--evals", "6",
              "--eval-episodes", "10"]  # fmt: skip
"""SAC on LunarLanderContinuous-v3 (gymnasium's Box2D, the host backend): the RL Zoo's step size
and soft-update rate for this task, bellman's other defaults."""

DAGGER_WORKLOADS = {
    "dagger": {
        "section": "dagger-pendulum",
        "env": "Pendulum-v1",
        "tag": "pendulum",
        "expert": PENDULUM_EXPERT,
        "rounds": 32,
    },
    "dagger-llc": {
        "section": "dagger-llc",
        "env": "LunarLanderContinuous-v3",
        "tag": "llc",
        "expert": LLC_EXPERT,
        "rounds": 32,
    },
}
"""DAgger against behaviour cloning: each round 4 envs x 50 steps labelled (200 labels), 500
cloning steps; BC from 1 to 32 of the expert's greedy episodes, 20,000 cloning steps."""


def dagger_curve(workload: str, note: str, meta: dict) -> dict:
    w = DAGGER_WORKLOADS[workload]
    env, tag = w["env"], w["tag"]
    train(f"sac-{tag}-expert", w["expert"], fresh=False)
    bc_rows = []
    for k in (1, 2, 4, 8, 16, 32):
        data = collect(f"sac-{tag}-expert", f"{tag}-expert-{k}", "--episodes", str(k))
        run = train(
            f"bc-{tag}-{k}",
            ["bc", "--env", env, "--dataset", data["path"], "--seeds", "4", "--steps", "20000",
             "--evals", "0", "--eval-episodes", "20"],
            fresh=False,
        )  # fmt: skip
        bc_rows.append({"labels": data["steps"], "scores": score(run, data).tolist()})
    ref = collect(f"sac-{tag}-expert", f"{tag}-expert-1", "--episodes", "1")
    expert = rel(BASE / f"sac-{tag}-expert")
    run = train(
        f"dagger-{tag}",
        ["dagger", "--env", env, "--expert", expert, "--seeds", "4", "--steps",
         str(200 * w["rounds"]), "--num-envs", "4", "--num-steps", "50", "--gradient-steps",
         "500", "--evals", str(w["rounds"] - 1), "--eval-episodes", "20"],
        fresh=False,
    )  # fmt: skip
    curve = [
        (int(r["step"]), float(np.mean(100 * (np.asarray(r["eval_return"]) - ref["ref_min"])
                                       / (ref["ref_max"] - ref["ref_min"]))))
        for r in run["records"] if "eval_return" in r
    ]  # fmt: skip
    bc_first = next((r["labels"] for r in bc_rows if np.mean(r["scores"]) >= 90), None)
    dagger_first = next((s for s, v in curve if v >= 90), None)
    backend = run["summary"]["backend"]
    lines = [note, ""] if note else []
    lines += [
        f"SAC's expert on {env} (`bellman train {' '.join(w['expert'])}`; the {backend} "
        f"backend); reference returns {ref['ref_min']:.1f} (random) and {ref['ref_max']:.1f} "
        "(the expert). Behaviour cloning learns from k of the expert's greedy episodes "
        "(`bellman collect --episodes k`, 20,000 gradient steps, 4 seeds); DAgger (`bellman "
        "train dagger --expert`, no demonstrations, each round 4 envs x 50 steps labelled by "
        "the expert, 500 cloning steps, 4 seeds) is evaluated after every round. Each figure is "
        "the normalised score of 20 greedy episodes per seed. Expert-labelled steps: the "
        "dataset's steps for BC, every state played for DAgger.",
        "",
        "| expert-labelled steps | BC: normalised, mean [95% interval] |",
        "|---:|---:|",
        *[f"| {r['labels']:,} | {interval(np.asarray(r['scores']))} |" for r in bc_rows],
        "",
        "| expert-labelled steps | " + " | ".join(f"{s:,}" for s, _ in curve) + " |",
        "|---|" + "---:|" * len(curve),
        "| DAgger: normalised, mean of 4 | " + " | ".join(f"{v:.1f}" for _, v in curve) + " |",
        "",
        f"- First reaching 90: BC at {bc_first or 'none of the sizes'} labelled steps, DAgger at "
        f"{dagger_first or 'none'}"
        + (
            f" ({dagger_first / bc_first:.2f} of BC's; target at most 0.25)."
            if bc_first and dagger_first
            else "."
        ),
    ]
    command = "python benchmarks/offline_results.py"
    write_section(w["section"], "\n".join(lines), meta, command)
    return {"bc": bc_rows, "dagger": curve, "bc_first": bc_first, "dagger_first": dagger_first}


PENDULUM_MEDIUM_STEPS = 3000
"""SAC's steps on Pendulum-v1 to a medium policy (about a third of the expert's score)."""
PENDULUM_GRADIENT_STEPS = 3000
"""Gradient steps of each offline run on Pendulum (CQL's 30 sampled actions per state make it
the costly one: about 4 updates of 4 seeds a second on one core)."""


def offline(note: str, meta: dict) -> dict:
    train("sac-pendulum-expert", PENDULUM_EXPERT, fresh=False)
    train(
        "sac-pendulum-medium",
        ["sac", "--env", "Pendulum-v1", "--steps", str(PENDULUM_MEDIUM_STEPS), "--evals", "0",
         "--preset", "pendulum"],
        fresh=False,
    )  # fmt: skip
    expert = rel(BASE / "sac-pendulum-expert")
    sets = {
        "expert": collect("sac-pendulum-expert", "pendulum-expert", "--episodes", "50",
                          "--stochastic"),
        "medium": collect("sac-pendulum-medium", "pendulum-medium", "--episodes", "50",
                          "--stochastic", "--expert", expert),
        "medium-replay": collect("sac-pendulum-medium", "pendulum-medium-replay", "--replay",
                                 "--expert", expert),
    }  # fmt: skip
    algos = ("bc", "td3bc", "cql", "iql")
    table: dict[str, dict[str, list[float]]] = {}
    for name, data in sets.items():
        table[name] = {}
        for algo in algos:
            if not wanted(f"{algo}-pendulum-{name}", algo):
                continue
            run = train(
                f"{algo}-pendulum-{name}",
                [algo, "--env", "Pendulum-v1", "--dataset", data["path"], "--seeds", "4",
                 "--steps", str(PENDULUM_GRADIENT_STEPS), "--evals", "0", "--eval-episodes", "20"],
                fresh=False,
            )  # fmt: skip
            table[name][algo] = score(run, data).tolist()
    lines = [note, ""] if note else []
    lines += [
        "Pendulum-v1 datasets from bellman's SAC (`bellman collect`): expert, 50 stochastic "
        f"episodes of the converged run ({PENDULUM_EXPERT[4]} steps); medium, 50 stochastic "
        f"episodes of a run stopped at {PENDULUM_MEDIUM_STEPS:,} steps; medium-replay, that "
        f"run's replay memory (`--replay`). Each algorithm: {PENDULUM_GRADIENT_STEPS:,} gradient "
        "steps, 4 seeds, its "
        "defaults; the final normalised score, mean [95% bootstrap interval].",
        "",
        *score_table(sets, table, algos),
    ]
    write_section(
        "offline-pendulum", "\n".join(lines), meta, "python benchmarks/offline_results.py"
    )
    return {"datasets": sets, "table": table}


HALFCHEETAH_SAC = ["sac", "--env", "HalfCheetah-v5", "--backend", "gymnasium", "--evals", "10",
                   "--eval-episodes", "5", "--learning-starts", "5000"]  # fmt: skip
HALFCHEETAH_MEDIUM_STEPS = 35_000
"""SAC's steps on HalfCheetah-v5 to the medium policy (the expert's run continues it)."""
HALFCHEETAH_EXPERT_STEPS = 250_000
HALFCHEETAH_GRADIENT_STEPS = 10_000
"""Gradient steps of each offline run on HalfCheetah (the papers run 1,000,000; see the note)."""


TRAIN = {"bc", "td3bc", "cql", "iql"}
"""--algos: the algorithms whose missing offline runs are trained; the tables show the others'
runs where they exist ("not run" where not)."""


def resumed(tag: str, source: str, steps: int) -> None:
    """BASE/tag: a copy of the run BASE/source trained on (`--resume --steps`) to `steps`."""
    out = BASE / tag
    if (out / "summary.json").exists() and json.loads((out / "config.json").read_text())[
        "settings"
    ]["steps"] == steps:
        return
    if not out.exists():
        shutil.copytree(BASE / source, out)
    algo = json.loads((out / "config.json").read_text())["algo"]
    bellman("train", algo, "--resume", rel(out), "--steps", str(steps), "--quiet")


def halfcheetah(note: str, meta: dict) -> dict:
    train(
        "sac-halfcheetah-medium",
        [*HALFCHEETAH_SAC, "--steps", str(HALFCHEETAH_MEDIUM_STEPS)],
        fresh=False,
    )
    resumed("sac-halfcheetah-expert", "sac-halfcheetah-medium", HALFCHEETAH_EXPERT_STEPS)
    expert = rel(BASE / "sac-halfcheetah-expert")
    refs = ("--reference-episodes", "20", "--expert", expert)
    sets = {
        "medium-replay": collect("sac-halfcheetah-medium", "halfcheetah-medium-replay",
                                 "--replay", *refs),
        "medium": collect("sac-halfcheetah-medium", "halfcheetah-medium", "--episodes", "100",
                          "--stochastic", *refs),
        "expert": collect("sac-halfcheetah-expert", "halfcheetah-expert", "--episodes", "100",
                          "--stochastic", *refs),
    }  # fmt: skip
    algos = ("bc", "td3bc", "cql", "iql")
    table: dict[str, dict[str, list[float]]] = {}
    walls: dict[str, dict[str, float]] = {}
    for name, data in sets.items():
        table[name], walls[name] = {}, {}
        for algo in algos:
            if not wanted(f"{algo}-halfcheetah-{name}", algo):
                continue
            run = train(
                f"{algo}-halfcheetah-{name}",
                [algo, "--env", "HalfCheetah-v5", "--dataset", data["path"], "--seeds", "4",
                 "--steps", str(HALFCHEETAH_GRADIENT_STEPS), "--evals", "0",
                 "--eval-episodes", "5"],
                fresh=False,
            )  # fmt: skip
            table[name][algo] = score(run, data).tolist()
            walls[name][algo] = run["summary"]["wall_s"]
    lines = [note, ""] if note else []
    lines += [
        "HalfCheetah-v5 datasets from bellman's SAC on the gymnasium backend (`bellman collect`): "
        f"medium, 100 stochastic episodes of a run stopped at {HALFCHEETAH_MEDIUM_STEPS:,} steps; "
        "medium-replay, that run's replay memory (`--replay`, every transition it saw); expert, "
        f"100 stochastic episodes of the same run trained on to {HALFCHEETAH_EXPERT_STEPS:,} steps "
        "(`--resume --steps`). Reference returns: the random policy's and the expert's greedy "
        f"mean over 20 episodes ({sets['expert']['ref_min']:.0f} and "
        f"{sets['expert']['ref_max']:.0f}). Each algorithm: its defaults, "
        f"{HALFCHEETAH_GRADIENT_STEPS:,} gradient steps (the papers and CORL run 1,000,000), "
        "4 seeds vmapped in one program, the final greedy evaluation of 5 episodes per seed; "
        "normalised score, mean [95% bootstrap interval over seeds].",
        "",
        *score_table(sets, table, algos),
    ]
    replay = table["medium-replay"]
    lines += ["", "On medium-replay, each offline algorithm against BC (target: 10 or more above):"]
    for algo in algos[1:]:
        if algo in replay and "bc" in replay:
            gap = float(np.mean(replay[algo])) - float(np.mean(replay["bc"]))
            lines.append(f"- {algo}: {gap:+.1f} ({'met' if gap >= 10 else 'not met'}).")
        else:
            lines.append(f"- {algo}: not run.")
    write_section(
        "offline-halfcheetah", "\n".join(lines), meta, "python benchmarks/offline_results.py"
    )
    return {"datasets": sets, "table": table, "wall_s": walls}


SPEED_STEPS = {"iql": (100_000, 10_000), "cql": (2_000, 500)}
"""Gradient steps timed per algorithm: (bellman's, d3rlpy's). CQL evaluates both critics on 31
actions per state (30 sampled, one from the data), so one of its updates costs about 30 of
IQL's: 100,000 of them take hours on one core in either library."""


def speed(note: str, meta: dict) -> dict:
    data = BASE / "datasets" / "pendulum-medium-replay-v0"
    if not data.exists():
        raise SystemExit("run the offline workload first: it makes the dataset")
    rows = []
    for algo, (ours_steps, peer_steps) in SPEED_STEPS.items():
        run = train(
            f"speed-{algo}",
            [algo, "--env", "Pendulum-v1", "--dataset", rel(data), "--steps", str(ours_steps),
             "--evals", "0", "--eval-episodes", "1", "--log-every", str(ours_steps // 10)],
        )  # fmt: skip
        s = run["summary"]
        rows.append(
            {"library": "bellman", "algo": algo, "steps": ours_steps,
             "updates_per_s": s["steps_per_s"], "train_s": s["train_s"], "wall_s": run["wall_s"]}
        )  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(
            [peer_python("d3rlpy"), str(HERE / "peers" / "d3rlpy_offline.py"), algo, str(data),
             str(peer_steps)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        peer = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(
            {"library": f"d3rlpy 2.8.1 ({peer['torch_threads']} torch thread(s))", "algo": algo,
             "steps": peer_steps, "updates_per_s": peer["updates_per_s"],
             "train_s": peer["train_s"], "wall_s": time.perf_counter() - start}
        )  # fmt: skip
    lines = [note, ""] if note else []
    lines += [
        "One seed of each on the Pendulum-v1 medium-replay dataset (batch 256, the networks of "
        "bellman's defaults in both), one process after the other; updates/s over the training "
        "loop alone (bellman: its chunks, compile excluded; d3rlpy: its `fit` call), wall s the "
        "whole process. The wall time of 100,000 updates is measured for bellman's IQL only; "
        "the other rows time fewer updates (the steps column), since CQL's 100,000 take hours "
        "on one core in either library.",
        "",
        "| algorithm | library | updates timed | updates/s | training s | whole process s |",
        "|---|---|---:|---:|---:|---:|",
        *[
            f"| {r['algo']} | {r['library']} | {r['steps']:,} | {r['updates_per_s']:,.1f} "
            f"| {r['train_s']:.1f} | {r['wall_s']:.1f} |"
            for r in rows
        ],
        "",
    ]
    for algo in SPEED_STEPS:
        ours, theirs = (r for r in rows if r["algo"] == algo)
        ratio = ours["updates_per_s"] / theirs["updates_per_s"]
        lines.append(
            f"- {algo}: bellman {ratio:.1f}x d3rlpy's updates per second (target 10x: "
            f"{'met' if ratio >= 10 else 'not met'})."
        )
    write_section("offline-speed", "\n".join(lines), meta, "python benchmarks/offline_results.py")
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="bc,gail,dagger,dagger-llc,offline,halfcheetah,speed")
    parser.add_argument("--note", default="", help="a sentence on how the runs were made")
    parser.add_argument(
        "--algos",
        default="bc,td3bc,cql,iql",
        help="offline and halfcheetah: train the missing runs of these only (none: table the "
        "runs made so far)",
    )
    args = parser.parse_args()
    TRAIN.intersection_update(args.algos.split(","))
    meta = machine()
    BASE.mkdir(parents=True, exist_ok=True)
    workloads = {
        "bc": bc,
        "gail": gail,
        "dagger": lambda note, meta: dagger_curve("dagger", note, meta),
        "dagger-llc": lambda note, meta: dagger_curve("dagger-llc", note, meta),
        "offline": offline,
        "halfcheetah": halfcheetah,
        "speed": speed,
    }
    saved = OUT / "offline-results.json"
    record = json.loads(saved.read_text()) if saved.exists() else {}
    for name in args.only.split(","):
        record[name] = {"meta": meta, "result": workloads[name](args.note, meta)}
        saved.write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
