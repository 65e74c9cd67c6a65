"""Hyperparameter search with Optuna, after the RL Zoo's ``--optimize``: ``neuroevo tune TASK --algo ars``.

Each trial trains the optimizer with settings drawn from its search space (:data:`SEARCH_SPACES`, TPE sampling)
under the same env-step budget and seed, evaluates the solution at ``marks`` fixed env-step marks (not
generations: their size changes with the population size being tuned) and reports each evaluation to Optuna's
median pruner, which stops trials whose curve falls below the median of the earlier trials at the same mark.
A trial's value is the mean of its evaluations at the marks (the area under its learning curve, the last mark at
the budget): it prefers settings that learn fast and hold what they learned, and it separates settings that all
reach a task's maximum return by the end.

Layout of ``out``::

    tune.json        the study's task, optimizer, budget, seed, marks, overrides and command line
    study.journal    Optuna's journal storage (one file): every trial, its settings and its curve
    best.toml        the best settings so far, as a card overlay: neuroevo train --env TASK --config best.toml
    trials.csv       one row per trial: number, state, value, the settings

A rerun with the same ``out`` continues the study up to ``trials`` finished trials; trials that a crash or a
kill left running (or that Ctrl-C interrupted) are queued again with the same settings.
"""

from __future__ import annotations

import argparse
import copy
import csv
import fcntl
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuroevo.checkpoint import atomic_write, atomic_write_json
from neuroevo.config import Config, config_from_dict, resolve_config
from neuroevo.rollout import evaluate
from neuroevo.seeding import derive_seed


@dataclass(frozen=True)
class Param:
    """One dimension of a search space.

    ``kind``: 'float' (``low``..``high``, log-uniform if ``log``), 'int' (the same, integers), 'choice' (one of
    ``choices``) or 'fraction': one of ``choices`` times the sampled ``of`` setting (``popsize`` by default)
    divided by ``per`` and rounded, at least ``low`` (ARS's top directions as a share of its directions).
    """

    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    of: str = "popsize"
    per: int = 1

    def describe(self) -> str:
        if self.kind in ("float", "int"):
            return f"{self.kind} in [{self.low:g}, {self.high:g}]{', log scale' if self.log else ''}"
        values = ", ".join(str(c) for c in self.choices)
        if self.kind == "choice":
            return f"one of {values}"
        share = f"{self.of} / {self.per}" if self.per > 1 else self.of
        return f"({values}) x {share}, at least {self.low:g}"


def _log(low: float, high: float) -> Param:
    return Param("float", low, high, log=True)


def _uniform(low: float, high: float) -> Param:
    return Param("float", low, high)


def _choice(*choices: Any) -> Param:
    return Param("choice", choices=choices)


def _share(low: int, *choices: float, per: int = 1) -> Param:
    return Param("fraction", low, choices=choices, per=per)


#: population sizes tried: powers of two (even, as antithetic sampling needs)
POPSIZES = _choice(8, 16, 32, 64, 128, 256)

#: optimizer -> setting -> its range (documented in docs/guides/logging-and-tuning.md, generated from here)
SEARCH_SPACES: dict[str, dict[str, Param]] = {
    "es": {"popsize": POPSIZES, "sigma": _log(0.005, 0.5), "lr": _log(0.001, 0.3)},
    "eggroll": {"popsize": POPSIZES, "sigma": _log(0.005, 0.5), "lr": _log(0.001, 0.3), "rank": _choice(1, 2, 4, 8)},
    "ga": {"popsize": POPSIZES, "sigma": _log(0.001, 0.5), "truncation": _share(2, 0.1, 0.2, 0.5),
           "num_elites": _share(1, 0.02, 0.05, 0.1)},
    "ars": {"popsize": _choice(8, 16, 32, 64, 128), "sigma": _log(0.005, 0.5), "lr": _log(0.005, 0.5),
            "top_directions": _share(1, 0.25, 0.5, 1.0, per=2)},
    "pso": {"popsize": POPSIZES, "sigma": _log(0.01, 1.0), "inertia": _uniform(0.4, 0.95),
            "cognitive": _uniform(0.5, 2.5), "social": _uniform(0.5, 2.5)},
    "de": {"popsize": POPSIZES, "sigma": _log(0.01, 1.0), "strategy": _choice("rand/1/bin", "current-to-best/1/bin"),
           "differential_weight": _uniform(0.3, 1.0), "crossover_rate": _uniform(0.1, 1.0)},
    "sa": {"popsize": POPSIZES, "sigma": _log(0.002, 0.5), "init_sigma": _log(0.01, 1.0),
           "cooling": _uniform(0.8, 0.99)},
    "hill_climbing": {"popsize": POPSIZES, "sigma": _log(0.002, 0.5), "init_sigma": _log(0.01, 1.0)},
    "random_search": {"popsize": POPSIZES, "sigma": _log(0.01, 2.0)},
    "nelder_mead": {"sigma": _log(0.01, 1.0), "expansion": _uniform(1.5, 3.0), "contraction": _uniform(0.25, 0.75)},
    "aco_r": {"popsize": POPSIZES, "sigma": _log(0.01, 1.0), "archive_size": _choice(10, 25, 50, 100),
              "locality": _log(0.01, 1.0), "evaporation": _uniform(0.5, 0.99)},
    "cmaes": {"sigma": _log(0.01, 1.0), "separable": _choice(False, True)},
    "pgpe": {"popsize": POPSIZES, "sigma_norm": _log(0.05, 1.0), "lr": _log(0.001, 0.1), "sigma_lr": _log(0.01, 0.5)},
    "snes": {"sigma": _log(0.01, 1.0), "lr": _log(0.1, 2.0)},
    "xnes": {"sigma": _log(0.01, 1.0), "lr": _log(0.1, 2.0)},
    "cem": {"popsize": _choice(16, 32, 64, 128, 256), "sigma": _log(0.1, 3.0),
            "parenthood_ratio": _uniform(0.125, 0.5)},  # at least 2 parents
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``neuroevo tune``'s flags on ``parser``."""
    from neuroevo.algorithms import ALGORITHMS

    parser.add_argument("task", help="env id with a task card, or a card path")
    parser.add_argument("--algo", required=True, choices=list(ALGORITHMS), help="the optimizer to tune")
    parser.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    parser.add_argument("--budget", type=int, required=True, metavar="STEPS", help="training env steps of each trial")
    parser.add_argument("--out", required=True, help="study directory")
    parser.add_argument("--seed", type=int, default=0, help="run seed of every trial, and the sampler's (default 0)")
    parser.add_argument("--marks", type=int, default=5, help="evaluations per trial, at evenly spaced env steps "
                        "(default 5); the pruner compares trials there")
    parser.add_argument("--jobs", type=int, default=1, help="trials at once, in threads of this process (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, shared by the jobs (default 1)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override of every trial")


def describe_trial(trial: Any) -> str:
    """One line per finished trial: its state, its value (or where it stopped) and its settings."""
    if trial.state.name == "COMPLETE":
        value = f", mean return over the marks {trial.value:.2f}"
    elif trial.intermediate_values:  # pruned (Optuna's value is then the last report) or failed
        mark = max(trial.intermediate_values)
        value = f" at {mark} env steps, return {trial.intermediate_values[mark]:.2f}"
    else:
        value = ""
    return f"trial {trial.number}: {trial.state.name.lower()}{value} {trial.user_attrs.get('settings', {})}"


def search_space(algo: str) -> dict[str, Param]:
    if algo not in SEARCH_SPACES:
        raise ValueError(f"no search space for {algo!r}; tune one of {', '.join(SEARCH_SPACES)}")
    return SEARCH_SPACES[algo]


def sample(trial: Any, algo: str) -> dict[str, Any]:
    """Draw the settings of one trial: ``{algo: {setting: value}}`` (Optuna's names are ``algo.setting``)."""
    settings: dict[str, Any] = {}
    fractions = {}
    for name, p in search_space(algo).items():
        key = f"{algo}.{name}"
        if p.kind == "float":
            settings[name] = trial.suggest_float(key, p.low, p.high, log=p.log)
        elif p.kind == "int":
            settings[name] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log)
        else:
            value = trial.suggest_categorical(key, list(p.choices))
            if p.kind == "fraction":
                fractions[name] = (p, value)
            else:
                settings[name] = value
    for name, (p, share) in fractions.items():
        settings[name] = max(int(p.low), round(share * settings[p.of] / p.per))
    return {algo: settings}


def search_space_table() -> str:
    """Markdown: every optimizer's search space (the docs' generated table)."""
    rows = ["| optimizer | setting | range |", "|---|---|---|"]
    for algo, space in SEARCH_SPACES.items():
        for name, p in space.items():
            rows.append(f"| `{algo}` | `{algo}.{name}` | {p.describe()} |")
    return "\n".join(rows)


def marks_of(budget: int, marks: int) -> list[int]:
    """The env-step marks at which a trial is evaluated and reported: ``budget * k / marks``, k = 1..marks."""
    return [budget * k // marks for k in range(1, marks + 1)]


def trial_config(task: str, algo: str, budget: int, seed: int, settings: dict[str, Any],
                 overrides: dict[str, Any] | None = None) -> Config:
    """A trial's config: the card, the study's overrides, the trial's settings, the budget (env steps only)."""
    config = resolve_config(task, overrides)
    run = {"algo": algo, "seed": seed, "steps": budget, "generations": None, "target": None,
           "eval_every": 2**31 - 1}  # the trainer evaluates only once the budget is spent; the trial at the marks
    return config_from_dict({"run": run, **settings}, config)


def run_trial(config: Config, marks: list[int], report: Callable[[float, int], bool]) -> list[float]:
    """Train ``config`` to its budget; at each mark, evaluate the solution as it stood there and
    ``report(return, mark)``, which returns True to stop (prune) the trial. Returns the returns at the marks
    reached.

    The solution at a mark is the one the generation that crossed it started from (the RL Zoo's evaluation
    callbacks, too, evaluate the policy that collected those steps): a population that spends the whole budget
    in one generation is judged on what it had learned within the budget, not on one update past it.
    """
    from neuroevo.trainer import Trainer

    trainer = Trainer(config, None)
    curve: list[float] = []
    try:
        while len(curve) < len(marks):
            center = trainer.optimizer.center.clone()
            normalizer = copy.deepcopy(trainer.normalizer)
            trainer.step()
            if trainer.env_steps >= marks[len(curve)]:
                value = _evaluate(trainer, center, normalizer)
                while len(curve) < len(marks) and trainer.env_steps >= marks[len(curve)]:  # a generation may
                    curve.append(value)                                                 # pass several marks
                    if report(value, marks[len(curve) - 1]):
                        return curve
    finally:
        trainer.close()
    return curve


def _evaluate(trainer: Any, center: torch.Tensor, normalizer: Any) -> float:
    """The mean return of ``center`` over the run's evaluation episodes (the trainer's seeds and settings)."""
    cfg = trainer.config
    result = evaluate(trainer.policy, center[None], trainer.eval_env, cfg.run.eval_episodes, cfg.env.max_steps,
                      normalizer=normalizer, seed=derive_seed(cfg.run.seed, -1), compile=cfg.run.compile)
    return float(result.episode_returns[0].mean())


@dataclass
class TuneResult:
    """A study's outcome so far."""

    best_value: float
    """the best trial's value: the mean of its evaluated returns at the marks"""
    best_trial: int
    best_settings: dict[str, Any]
    """the card overlay in best.toml: ``{"run": {"algo": ...}, algo: {setting: value}}``"""
    counts: dict[str, int] = field(default_factory=dict)
    """trials per state (COMPLETE, PRUNED, FAIL, ...)"""
    out: Path | None = None


def tune(
    task: str,
    algo: str,
    trials: int,
    budget: int,
    out: str | Path,
    *,
    seed: int = 0,
    marks: int = 5,
    jobs: int = 1,
    threads: int | None = 1,
    overrides: dict[str, Any] | None = None,
    command: str | None = None,
    on_trial: Callable[[Any], None] | None = None,
) -> TuneResult:
    """Run (or continue) the study in ``out`` until it holds ``trials`` finished trials; returns the best.

    Args:
        task: env id with a task card, or a card path.
        algo: the optimizer to tune (a key of :data:`SEARCH_SPACES`).
        trials: finished trials (complete, pruned or failed) the study should hold.
        budget: training env steps of every trial.
        seed: the run seed of every trial (the same start and episodes for every setting).
        marks: evaluations per trial, at ``budget * k / marks`` env steps; the pruner compares them.
        jobs: trials run at once, in threads of this process (torch releases the interpreter lock in its
            kernels; each trial's population is evaluated in its thread).
        threads: torch CPU threads (shared by the jobs; None: torch's default).
        overrides: nested config overrides of every trial (``{"env": {"episodes": 3}}``).
        command: the command line, kept in tune.json.
        on_trial: called with each finished ``optuna.trial.FrozenTrial``.
    """
    try:
        import optuna
    except ImportError:
        raise ImportError("neuroevo tune needs Optuna: pip install 'neuroevo[optuna]'") from None

    search_space(algo)
    if trials <= 0 or budget <= 0 or marks <= 0 or jobs <= 0:
        raise ValueError("--trials, --budget, --marks and --jobs must be positive")
    first = trial_config(task, algo, budget, seed, {}, overrides)
    first.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / "tune.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one process per study: its RUNNING trials are stale
    except BlockingIOError:
        raise ValueError(f"another neuroevo tune is running on {out}") from None
    try:
        _open_study_record(out, task, first.env.id, algo, budget, seed, marks, overrides, command)
        run = _Study(task, algo, budget, seed, marks_of(budget, marks), overrides, command, out, on_trial)
        study = _open_study(optuna, out, seed, trials, run.marks)
        remaining = trials - _finished(study)
        if remaining > 0:
            previous = torch.get_num_threads()
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                study.optimize(run.objective, n_trials=remaining, n_jobs=jobs, catch=(ValueError,),
                               callbacks=[run.finished])
            finally:
                torch.set_num_threads(previous)
        return run.result(study)
    finally:
        lock.close()
        (out / "tune.lock").unlink(missing_ok=True)


def _open_study(optuna: Any, out: Path, seed: int, trials: int, marks: list[int]) -> Any:
    """The study in ``out/study.journal`` (new or continued), its stale trials queued again."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="neuroevo-tune",
        storage=JournalStorage(JournalFileBackend(str(out / "study.journal"))),
        direction="maximize",
        load_if_exists=True,
        # the RL Zoo's choices: TPE after random start-up trials; the median pruner, not before a third of the marks
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, trials // 3))),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=marks[len(marks) // 3]),
    )
    _requeue_stale(study)
    return study


@dataclass
class _Study:
    """One study's settings, its objective and its bookkeeping after each trial."""

    task: str
    algo: str
    budget: int
    seed: int
    marks: list[int]
    overrides: dict[str, Any] | None
    command: str | None
    out: Path
    on_trial: Callable[[Any], None] | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def objective(self, trial: Any) -> float:
        import optuna

        settings = sample(trial, self.algo)
        trial.set_user_attr("settings", settings)
        config = trial_config(self.task, self.algo, self.budget, self.seed, settings, self.overrides)

        def report(value: float, step: int) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        try:
            curve = run_trial(config, self.marks, report)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # queued again by the next run of the study
            raise
        trial.set_user_attr("final_return", curve[-1])
        if len(curve) < len(self.marks):
            raise optuna.TrialPruned()
        return sum(curve) / len(curve)

    def finished(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        with self.lock:  # the jobs' threads finish trials concurrently
            if trial.state == TrialState.COMPLETE and study.best_trial.number == trial.number:
                write_overlay(self.out / "best.toml", self.task, self.algo, trial, self.budget, self.command)
            _write_trials(self.out / "trials.csv", study.get_trials(deepcopy=False))
        if self.on_trial is not None:
            self.on_trial(trial)

    def result(self, study: Any) -> TuneResult:
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        _write_trials(self.out / "trials.csv", trials)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        if not any(t.state == TrialState.COMPLETE for t in trials):
            raise ValueError(f"no trial of the study in {self.out} completed ({counts}); see trials.csv")
        best = study.best_trial
        write_overlay(self.out / "best.toml", self.task, self.algo, best, self.budget, self.command)
        return TuneResult(float(best.value), best.number, overlay(self.algo, best), counts, self.out)


def _open_study_record(out: Path, task: str, env_id: str, algo: str, budget: int, seed: int, marks: int,
                       overrides: dict[str, Any] | None, command: str | None) -> None:
    """tune.json: new, or checked against the rerun's settings (a study keeps its task, optimizer and budget)."""
    path = out / "tune.json"
    record: dict[str, Any] = {"task": task, "env_id": env_id, "algo": algo, "budget": budget, "seed": seed,
                              "marks": marks, "overrides": overrides or {}}
    if path.exists():
        saved = json.loads(path.read_text())
        differs = [k for k, v in record.items() if saved.get(k) != v]
        if differs:
            raise ValueError(f"{out} holds a study with other {', '.join(differs)} "
                             f"({', '.join(f'{k}={saved.get(k)!r}' for k in differs)}); pick another --out")
        record = saved
    else:
        record.update(started=time.strftime("%Y-%m-%d %H:%M:%S"), commands=[])
    if command is not None:
        record["commands"].append(command)  # the first run, then each continuation
    atomic_write_json(path, record)


def _requeue_stale(study: Any) -> None:
    """Trials a crash left RUNNING (this process holds the study's lock, so none is running) and trials Ctrl-C
    interrupted: fail the former, queue both again with the same settings (once)."""
    from optuna.trial import TrialState

    storage = study._storage  # the storage's public methods; Study has no public way to fail a stale trial
    trials = study.get_trials(deepcopy=False)
    requeued = {t.user_attrs.get("requeue_of") for t in trials}
    for t in trials:
        if t.state == TrialState.RUNNING:
            storage.set_trial_user_attr(t._trial_id, "crashed", True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        elif not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")):
            continue
        if t.number not in requeued and t.params:
            study.enqueue_trial(t.params, user_attrs={"requeue_of": t.number})


def _finished(study: Any) -> int:
    """Trials that count toward ``trials``: complete, pruned, or failed on their settings (not killed)."""
    from optuna.trial import TrialState

    count = 0
    for t in study.get_trials(deepcopy=False):
        killed = t.user_attrs.get("crashed") or t.user_attrs.get("interrupted")
        count += t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and not killed)
    return count


def overlay(algo: str, trial: Any) -> dict[str, Any]:
    """The card overlay of a trial: ``{"run": {"algo": algo}, algo: {...}}``."""
    return {"run": {"algo": algo}, **trial.user_attrs["settings"]}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def write_overlay(path: Path, task: str, algo: str, trial: Any, budget: int, command: str | None) -> None:
    """best.toml: the trial's settings as a TOML card overlay, with where they came from in its comments."""
    lines = [
        f"# neuroevo tune: trial {trial.number}, mean evaluated return {trial.value:.2f} over the marks, "
        f"{trial.user_attrs['final_return']:.2f} at {budget} env steps",
        *([f"# study: {command}"] if command else []),
        f"# use: neuroevo train --env {task} --config {path.name} --out RUN",
        "",
    ]
    for section, values in overlay(algo, trial).items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
        lines.append("")
    text = "\n".join(lines).encode()
    atomic_write(path, lambda f: f.write(text))


def _write_trials(path: Path, trials: list[Any]) -> None:
    """trials.csv: number, state, value, the last mark reported and its return, the settings (as the card
    takes them)."""
    settings = [{f"{section}.{k}": v for section, values in t.user_attrs.get("settings", {}).items()
                 for k, v in values.items()} for t in trials]
    names = list(dict.fromkeys(k for row in settings for k in row))
    rows: list[list[Any]] = [["number", "state", "value", "last_mark", "last_return", *names]]
    for t, row in zip(trials, settings, strict=True):
        last = max(t.intermediate_values) if t.intermediate_values else ""
        value = f"{t.value:.4g}" if t.state.name == "COMPLETE" else ""  # a pruned trial's is its last report
        last_return = f"{t.intermediate_values[last]:.4g}" if last != "" else ""
        rows.append([t.number, t.state.name, value, last, last_return, *(row.get(n, "") for n in names)])
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    text = buffer.getvalue().encode()
    atomic_write(path, lambda f: f.write(text))
