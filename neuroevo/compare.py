"""Evolution against policy gradients on one task, under one env-step budget and the same seeds.

:func:`run_comparison` trains every algorithm (ES, GA, ARS through the :class:`~neuroevo.trainer.Trainer`
with its task card's settings; PPO, SAC and TD3 from Stable-Baselines3 with the card's ``[ppo]``, ``[sac]``,
``[td3]`` tables) for each seed
into ``out/<algo>/seed<k>/``, one run at a time, and returns the :class:`Comparison`; ``neuroevo.report``
turns it into a table and plots. Every run writes ``result.json`` when it finishes: a rerun skips those
runs and continues an interrupted one from its last checkpoint (an evolution run's, or the save a baseline
run makes every ``save_every`` env steps; ``neuroevo.baselines.sb3``), so a crash or a kill loses no
finished run and at most ``save_every`` env steps of an unfinished one. Evolution runs spend the whole
budget (the card's stop target is dropped), like the baselines, so that the curves cover the same env steps.

A comparison that outlives its machine (hours of SAC on a shared box, a study spread over several sessions or
hosts) keeps an ``archive``: every finished run's record (:data:`RECORD_FILES`, a few hundred KB; no
checkpoints) is copied there, and a run whose record is there counts as finished in any ``out``. An unfinished
run whose checkpoint is small (at most :data:`ARCHIVE_CHECKPOINT_LIMIT`: the GA's and random search's, which name
their members and best policy by lineages, a few KB whatever the network) is copied there too when it stops
(:data:`RESUME_FILES`), and another machine continues it from that checkpoint. Commit the archive, and a rerun
from a fresh clone trains only what is missing.

Layout of ``out``::

    compare.json              the comparison's task, budget, seeds and algorithms
    <algo>/seed<k>/           config.json, command.txt, metrics.jsonl, progress.csv, result.json (+ the algorithm's
                              own files; the formats of ``log.formats``, written by ``neuroevo.logger``)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from neuroevo.algorithms import ALGORITHMS, init_scale_for, make_optimizer
from neuroevo.baselines import BASELINES
from neuroevo.checkpoint import atomic_write_json
from neuroevo.config import Config, config_from_dict, resolve_config
from neuroevo.envs import make_env
from neuroevo.policies import Policy

#: algorithm names ``compare`` accepts: neuroevo's optimizers and the Stable-Baselines3 baselines
ALGOS: tuple[str, ...] = (*ALGORITHMS, *BASELINES)
#: what ``neuroevo compare`` runs by default
DEFAULT_ALGOS: tuple[str, ...] = ("es", "ga", "ars", "ppo")
#: a finished run's record, what an archive keeps: the report's inputs and the run's settings, result.json last
RECORD_FILES: tuple[str, ...] = ("config.json", "command.txt", "metrics.jsonl", "result.json")
#: what an archive keeps of an unfinished run to continue it elsewhere, the checkpoint last
RESUME_FILES: tuple[str, ...] = ("config.json", "command.txt", "metrics.jsonl", "progress.csv", "checkpoints/last.pt")
#: the largest checkpoint an archive keeps (bytes); larger ones (ES's and ARS's centers, the baselines' networks)
#: stay on their machine
ARCHIVE_CHECKPOINT_LIMIT = 1 << 20


@dataclass
class Run:
    """One finished run: its result record and its learning curve (the evaluated rows of metrics.jsonl)."""

    algo: str
    seed: int
    result: dict[str, Any]
    """result.json: env_steps, wall_time, final_return, best_return, generations, load averages, threads, ..."""
    curve: list[dict[str, float]] = field(default_factory=list)
    """[{"env_steps", "wall", "return"}] at every evaluation, in order"""


@dataclass
class Comparison:
    """A comparison's settings and its finished runs (``runs[algo]``: one :class:`Run` per finished seed)."""

    task: str
    env_id: str
    threshold: float | None
    steps: int
    seeds: list[int]
    algos: list[str]
    runs: dict[str, list[Run]]
    info: dict[str, Any]
    """compare.json as written (machine, overrides, PPO settings' source and the Zoo's reference numbers)"""

    @property
    def planned(self) -> dict[str, list[int]]:
        """The seeds asked of each algorithm, over every ``neuroevo compare`` into this directory (one call may
        run the GA on 3 seeds and the next the baselines on 1)."""
        return _planned({"seeds": self.seeds, "algos": self.algos, **self.info})


def parse_algos(text: str | list[str]) -> list[str]:
    """``"es,ga,ppo"`` -> ``["es", "ga", "ppo"]``; an unknown name is a one-line ``ValueError``."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ValueError(f"no algorithm given; choose from {', '.join(ALGOS)}")
    for name in names:
        if name not in ALGOS:
            raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGOS)}")
    return list(dict.fromkeys(names))


def run_config(task: str, algo: str, seed: int, steps: int, overrides: dict[str, Any] | None = None) -> Config:
    """The config of one run: the task card, the overrides, then the budget (``steps`` env steps only) and seed."""
    config = resolve_config(task, overrides)
    run: dict[str, Any] = {"seed": seed, "steps": steps, "generations": None, "target": None}
    if algo not in BASELINES:
        run["algo"] = algo
    return config_from_dict({"run": run}, config)


def min_steps(config: Config, algo: str) -> tuple[int, str]:
    """The smallest budget that holds one generation of ``algo``, and how it is made up.

    An evolution generation is bounded by popsize x episodes x the episode length (``env.max_steps``, else
    gymnasium's time limit); a PPO update takes exactly num_envs x n_steps, a SAC / TD3 round num_envs x train_freq.
    """
    if algo in BASELINES:
        from neuroevo.baselines.sb3 import describe_update, update_steps

        return update_steps(config, algo), describe_update(config, algo)
    cfg = config.algo_config
    length = config.env.max_steps
    if length is None:
        try:
            length = gym.spec(config.env.id).max_episode_steps
        except gym.error.Error:
            length = None
    length = length or 1
    episodes = config.env.episodes
    return (
        cfg.popsize * episodes * length,
        f"{cfg.popsize} members x {episodes} episode{'s' if episodes > 1 else ''} x {length} steps",
    )


def build_policy(config: Config) -> Policy:
    """The policy the run's config builds (the trainer's rule, without its envs)."""
    env = make_env(config.env.id, 1, "cpu", config.env.backend, **config.env.make_args())
    try:
        return config.policy.build(env.obs_dim, env.single_action_space, env.single_observation_space)
    finally:
        env.close()


def check_runs(task: str, algos: list[str], steps: int, overrides: dict[str, Any] | None = None) -> None:
    """A one-line ``ValueError``, before anything runs, if a setting is unusable or ``steps`` cannot hold
    one generation (update) of every algorithm."""
    if steps <= 0:
        raise ValueError(f"--steps must be positive, got {steps}")
    for algo in algos:
        config = run_config(task, algo, 0, steps, overrides)
        if algo in BASELINES:
            from neuroevo.baselines.sb3 import check_settings

            check_settings(config, algo)
        else:
            config.validate()
            # the optimizer checks its settings, and gives its population size (CMA-ES's follows from D)
            policy = build_policy(config)
            popsize = make_optimizer(algo, policy.num_params, config.algo_config,
                                     init_scale=init_scale_for(policy, config.algo_config)).popsize
            config.algo_config.popsize = popsize
        need, parts = min_steps(config, algo)
        if steps < need:
            raise ValueError(
                f"budget {steps} env steps is too small for one generation of {algo} on {config.env.id} "
                f"({parts}): use --steps {need} or more"
            )


def default_steps(task: str, overrides: dict[str, Any] | None = None) -> int:
    """The RL Zoo's PPO budget (``ppo.steps``) for ``task``, when no budget is given."""
    steps = resolve_config(task, overrides).ppo.steps
    if steps is None:
        raise ValueError(f"{task} has no default budget (no RL Zoo n_timesteps in its card): give --steps")
    return steps


def run_comparison(
    task: str,
    algos: str | list[str],
    steps: int | None,
    seeds: int | list[int],
    out: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    threads: int | None = 1,
    on_run: Callable[[str, int, str], None] | None = None,
    command: str | None = None,
    archive: str | Path | None = None,
) -> Comparison:
    """Run (or complete) the comparison in ``out`` and return it.

    Args:
        task: env id with a task card, or a card path.
        algos: names from :data:`ALGOS` (``"es,ga,ars,ppo,sac,td3"`` or a list).
        steps: env-step budget of every run (None: the card's ``ppo.steps``, the RL Zoo's budget).
        seeds: K (seeds 0..K-1) or a list of seeds.
        out: comparison directory; runs already finished in it are kept.
        overrides: nested config overrides applied to every run (``{"es": {"popsize": 8}}``).
        threads: torch CPU threads for every run (None: torch's default).
        on_run: called with (algo, seed, status) where status is 'skip', 'start' or 'done'.
        command: the command line, kept in compare.json for the report.
        archive: a directory of finished runs' records (see the module docstring): runs recorded there are
            copied into ``out`` and skipped, and each run finished here is recorded there.
    """
    algos = parse_algos(algos)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("no seeds given")
    steps = steps if steps is not None else default_steps(task, overrides)
    check_runs(task, algos, steps, overrides)
    card = resolve_config(task, overrides)
    for algo in algos:
        if algo in BASELINES:
            from neuroevo.baselines.sb3 import warn_if_untuned

            warn_if_untuned(card, algo)
    out = Path(out)
    info = _open_comparison(out, task, card, steps, seeds, algos, overrides, threads)
    if command is not None:
        info["command"] = command
        info["commands"] = list(dict.fromkeys([*info.get("commands", []), command]))
        atomic_write_json(out / "compare.json", info)
    if archive is not None:
        archive = Path(archive)
        _check_same(archive / "compare.json", card, steps, overrides)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for algo in algos:
            for seed in seeds:
                kept = archive / algo / f"seed{seed}" if archive is not None else None
                _complete_run(task, algo, seed, steps, overrides, out / algo / f"seed{seed}", command, on_run, kept)
                if archive is not None:
                    _write_archive_info(archive, {**info, "seeds": seeds, "algos": algos})
    finally:
        torch.set_num_threads(previous)
    atomic_write_json(out / "compare.json", info)
    return load_comparison(out)


def _complete_run(task: str, algo: str, seed: int, steps: int, overrides, run_dir: Path, command: str | None,
                  on_run, kept: Path | None) -> None:
    """Train (or skip, or continue) one run; ``kept``: its place in the archive, or None."""
    if kept is not None and not (run_dir / "result.json").exists():
        _copy_record(kept, run_dir)
        if not (run_dir / "checkpoints" / "last.pt").exists() and (kept / "checkpoints" / "last.pt").is_file():
            _replace_with(kept, run_dir, RESUME_FILES)  # an unfinished run the archive carries: continued here
    if (run_dir / "result.json").exists():
        _notify(on_run, algo, seed, "skip")
    else:
        _notify(on_run, algo, seed, "start")
        try:
            _run_one(task, algo, seed, steps, overrides, run_dir, command)
        finally:
            checkpoint = run_dir / "checkpoints" / "last.pt"
            if (kept is not None and not (run_dir / "result.json").exists() and checkpoint.is_file()
                    and checkpoint.stat().st_size <= ARCHIVE_CHECKPOINT_LIMIT):
                _replace_with(run_dir, kept, RESUME_FILES)
        _notify(on_run, algo, seed, "done")
    if kept is not None:
        _copy_record(run_dir, kept)


def _copy_record(src: Path, dst: Path) -> None:
    """Copy a finished run's record from ``src`` to ``dst`` (nothing when ``src`` holds no finished run; an
    unfinished run in ``dst`` is replaced; result.json goes last, so a copy cut short is not a finished run)."""
    if not (src / "result.json").exists() or src.resolve() == dst.resolve():
        return
    if (dst / "result.json").exists() and (dst / "result.json").read_bytes() == (src / "result.json").read_bytes():
        return
    _replace_with(src, dst, RECORD_FILES)


def _replace_with(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    """Replace the directory ``dst`` by the files ``names`` of ``src``, copied in that order (the one that marks
    a whole copy last)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in names:
        if (src / name).exists():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / name, dst / name)


def _write_archive_info(archive: Path, info: dict[str, Any]) -> None:
    """The archive's compare.json: this comparison's settings, the runs the archive holds, and what earlier
    calls recorded there kept (their commands, and the first start)."""
    path = archive / "compare.json"
    before = json.loads(path.read_text()) if path.exists() else {}
    info = info | _archived(archive, info["algos"])
    info["commands"] = list(dict.fromkeys([*before.get("commands", []), *info.get("commands", [])]))
    info["started"] = min(before.get("started", info["started"]), info["started"])  # "%Y-%m-%d %H:%M:%S" sorts
    atomic_write_json(path, info)


def _archived(archive: Path, order: list[str]) -> dict[str, list]:
    """The algorithms and seeds an archive holds finished runs of (its compare.json lists them all), the
    algorithms in ``order`` (the command's, which the report keeps) and any others after them."""
    done = sorted(p.parent for p in archive.glob("*/seed*/result.json"))
    algos = {d.parent.name for d in done}
    return {"algos": [a for a in order if a in algos] + sorted(algos - set(order)),
            "seeds": sorted({int(d.name.removeprefix("seed")) for d in done})}


def _check_same(path: Path, card: Config, steps: int, overrides: dict[str, Any] | None) -> None:
    """A comparison directory (or archive) with ``path`` as its compare.json must hold the same task, budget
    and overrides as the one being run; a one-line ``ValueError`` names the difference."""
    if not path.exists():
        return
    info = json.loads(path.read_text())
    if info["env_id"] != card.env.id or info["steps"] != steps or info.get("overrides") != (overrides or {}):
        raise ValueError(
            f"{path.parent} holds a comparison of {info['env_id']} at {info['steps']} steps with overrides "
            f"{info.get('overrides')}, not {card.env.id} at {steps} steps with {overrides or {}}; pick another "
            "directory"
        )


def _notify(on_run, algo: str, seed: int, status: str) -> None:
    if on_run is not None:
        on_run(algo, seed, status)


def _open_comparison(out, task, card, steps, seeds, algos, overrides, threads) -> dict[str, Any]:
    """compare.json: a new one, or the existing one extended by new seeds and algorithms (same task and budget)."""
    path = out / "compare.json"
    _check_same(path, card, steps, overrides)
    if path.exists():
        info = json.loads(path.read_text())
        info.setdefault("baselines", _baselines_info(card))  # a comparison from before SAC and TD3
        planned = _planned(info)
        for algo in algos:
            planned[algo] = sorted(set(planned.get(algo, [])) | set(seeds))
        info["planned"] = planned
        info["seeds"] = sorted(set(info["seeds"]) | set(seeds))
        info["algos"] = list(dict.fromkeys([*info["algos"], *algos]))
    else:
        info = {
            "task": task,
            "env_id": card.env.id,
            "threshold": card.env.threshold,
            "steps": steps,
            "seeds": seeds,
            "algos": algos,
            "planned": {algo: list(seeds) for algo in algos},
            "overrides": overrides or {},
            "threads": threads,
            "ppo_source": card.ppo.source,
            "ppo_reference": _reference(card, "ppo"),
            "baselines": _baselines_info(card),
            "machine": {"cpus": os.cpu_count(), "cuda": torch.cuda.is_available()},
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, info)
    return info


def _planned(info: dict[str, Any]) -> dict[str, list[int]]:
    """compare.json's seeds per algorithm (from before it kept them: every seed of every algorithm)."""
    return {algo: list(seeds) for algo, seeds in info.get("planned", {a: info["seeds"] for a in info["algos"]}).items()}


def _baselines_info(card: Config) -> dict[str, Any]:
    """Each baseline's settings source and the Zoo's reference number, for the report's sanity checks."""
    return {algo: {"source": getattr(card, algo).source, "reference": _reference(card, algo)} for algo in BASELINES}


def _reference(card: Config, algo: str) -> dict[str, Any]:
    table = getattr(card, algo)
    return {"steps": table.steps, "return": table.reference_return, "std": table.reference_std}


def _run_one(task: str, algo: str, seed: int, steps: int, overrides, run_dir: Path, command: str | None) -> None:
    """Train one run into ``run_dir`` and write its result.json last (the marker of a finished run)."""
    load_start = os.getloadavg()
    if algo in BASELINES:
        from neuroevo.baselines.sb3 import last_checkpoint, resume_baseline, train_baseline

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the untuned warning was given once already
            if last_checkpoint(run_dir) is not None:  # an interrupted run continues from its last save
                result: Any = resume_baseline(run_dir, command=command)  # the baseline's or the Trainer's
            else:
                if run_dir.exists():  # killed before its first save: it starts over
                    shutil.rmtree(run_dir)
                result = train_baseline(algo, run_config(task, algo, seed, steps, overrides), run_dir, command=command)
    else:
        from neuroevo.trainer import Trainer

        if (run_dir / "checkpoints" / "last.pt").exists():  # an interrupted run continues where it stopped
            trainer = Trainer.resume(run_dir, {"run": {"steps": steps, "generations": None, "target": None}},
                                     command=command)
        else:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            trainer = Trainer(run_config(task, algo, seed, steps, overrides), run_dir, command=command)
        result = trainer.run()
        if result.interrupted:
            raise KeyboardInterrupt(f"{algo} seed {seed} interrupted; rerun the comparison to continue it")
    record = {
        "algo": algo,
        "seed": seed,
        "env_steps": result.env_steps,
        "wall_time": result.wall_time,
        "generations": result.generations,
        "final_return": result.final_eval_return,
        "best_return": result.best_eval_return,
        "load_average_start": list(load_start),
        "load_average_end": list(os.getloadavg()),
        "threads": torch.get_num_threads(),  # this run's (compare.json's is the last call's)
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write_json(run_dir / "result.json", record)


def read_curve(metrics_path: Path) -> list[dict[str, float]]:
    """The evaluated rows of a metrics.jsonl: [{"env_steps", "wall", "return"}]."""
    curve = []
    for line in metrics_path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "eval/return_mean" in row:
            curve.append({"env_steps": row["env_steps"], "wall": row["time/wall"], "return": row["eval/return_mean"]})
    return curve


def load_comparison(out: str | Path) -> Comparison:
    """The comparison saved in ``out``: its settings and every finished run (unfinished ones are left out)."""
    out = Path(out)
    path = out / "compare.json"
    if not path.exists():
        raise ValueError(f"{out} holds no comparison (no compare.json); run neuroevo compare first")
    info = json.loads(path.read_text())
    runs: dict[str, list[Run]] = {}
    planned = _planned(info)
    for algo in info["algos"]:
        runs[algo] = []
        for seed in planned.get(algo, info["seeds"]):
            run_dir = out / algo / f"seed{seed}"
            if (run_dir / "result.json").exists():
                result = json.loads((run_dir / "result.json").read_text())
                runs[algo].append(Run(algo, seed, result, read_curve(run_dir / "metrics.jsonl")))
    return Comparison(
        task=info["task"],
        env_id=info["env_id"],
        threshold=info["threshold"],
        steps=info["steps"],
        seeds=info["seeds"],
        algos=info["algos"],
        runs=runs,
        info=info,
    )
