"""The trainer: one config in, a run directory and a :class:`TrainResult` out.

One generation: ``optimizer.ask_population()`` -> ``evaluator.evaluate`` (batched policy forward + batched
env step) -> ``optimizer.tell(fitness)`` -> merge the observation statistics -> evaluate the solution -> log,
checkpoint. The trainer composes the parts; none of them knows about it. It holds one
:class:`~neuroevo.evaluator.Evaluator`, made from the config by :func:`~neuroevo.evaluator.make_evaluator`
(in this process, or on ``run.workers`` Ray workers, which rebuild the members from the compact population),
and never asks which.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuroevo.algorithms import init_scale_for, make_optimizer
from neuroevo.algorithms.population import tensor_digest
from neuroevo.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    atomic_write_json,
    first_line,
    load_file,
    policy_record,
    remove_stale_temporaries,
    unpack_policy_record,
)
from neuroevo.config import Config, config_from_dict
from neuroevo.distributed import WorkersLost
from neuroevo.envs import GymVectorEnv, check_user_env, is_user_env, make_env, resolve_device
from neuroevo.evaluator import EnvFactory, Evaluator, make_evaluator
from neuroevo.logger import Logger, check_renderable, command_line, record_command
from neuroevo.policies import DeployedPolicy, ObsNormalizer, Policy, check_fits, vbn
from neuroevo.rollout import EvalSettings, evaluate
from neuroevo.seeding import derive_seed

#: metrics rows a run with a directory keeps in memory (``TrainResult.history``); metrics.jsonl holds every row,
#: so that memory stays flat over a run of any length
HISTORY_WINDOW = 1000


def config_policy(config: Config, obs_dim: int, action_space) -> Policy:
    """Deprecated: ``config.policy.build(obs_dim, action_space)``."""
    warnings.warn("trainer.config_policy is deprecated; use config.policy.build(obs_dim, action_space)",
                  DeprecationWarning, stacklevel=2)
    return config.policy.build(obs_dim, action_space)


@dataclass
class TrainResult:
    """What a finished run gives back; the run directory holds the same and more."""

    run_dir: Path | None
    generations: int
    env_steps: int
    wall_time: float
    best_eval_return: float
    """best mean return of the evaluated solution over the run"""
    final_eval_return: float
    solved: bool
    """whether the target return was reached"""
    interrupted: bool
    """stopped early by SIGINT / SIGTERM (after finishing and checkpointing the current generation)"""
    solution: torch.Tensor
    """params [D] of the best evaluated solution (``Trainer.best_policy()`` or ``load_policy(run_dir)``
    pair them with the observation statistics they were evaluated with)"""
    history: list[dict[str, Any]] = field(default_factory=list)
    """the metrics rows: every one for a run without a directory, the last ``HISTORY_WINDOW`` for a run with one
    (its metrics.jsonl holds them all)"""


class Trainer:
    """Algorithm, policy, env, device, budget and output directory, tied together.

    Args:
        config: the run's :class:`~neuroevo.config.Config` (see ``resolve_config`` for task cards).
        out: run directory (config.json, command.txt, the metrics in ``config.log``'s formats (metrics.jsonl,
            progress.csv, ...; :mod:`neuroevo.logger`), checkpoints/, best_policy.pt); None keeps nothing.
        policy: a custom :class:`~neuroevo.policies.Policy` (e.g. a ``ModulePolicy``) instead of the
            config's linear/MLP.
        progress: show a progress bar with the best return and env steps per second.
        workers, ray_address: set ``run.workers`` / ``run.ray_address``: evaluate the population on
            that many Ray worker actors (a local Ray instance, or the cluster at the address) instead
            of in this process. Ray starts with the first generation; :meth:`close` (or the end of
            :meth:`run`) stops it.
        evaluator: an :class:`~neuroevo.evaluator.Evaluator` of your own instead of the one the config
            describes (it must evaluate ``policy`` on the config's task).
        overwrite: if ``out`` already holds a run, delete that directory and start afresh (default: a
            ``ValueError``; :meth:`resume` continues a run instead).
        command: the command line recorded in the run directory's ``command.txt`` (default: this process's).

    A user's own gymnasium env (``env.entry_point``, an id ``"package:EnvId"``, or one registered from outside
    gymnasium) is first held to gymnasium's env checker, whose warnings are shown once.
    """

    def __init__(
        self,
        config: Config,
        out: str | Path | None = None,
        *,
        policy: Policy | None = None,
        progress: bool = False,
        workers: int | None = None,
        ray_address: str | None = None,
        evaluator: Evaluator | None = None,
        overwrite: bool = False,
        command: str | None = None,
        _resuming: bool = False,
    ):
        if workers is not None or ray_address is not None:
            distributed: dict[str, Any] = {"workers": workers, "ray_address": ray_address}
            config = dataclasses.replace(
                config, run=dataclasses.replace(config.run, **{k: v for k, v in distributed.items() if v is not None})
            )
        config.validate()
        self.run_dir = Path(out) if out is not None else None
        if self.run_dir is not None and not _resuming and (self.run_dir / "metrics.jsonl").exists():
            if not overwrite:
                raise ValueError(
                    f"{self.run_dir} already holds a run: continue it with Trainer.resume({str(self.run_dir)!r}), "
                    "start afresh with Trainer(config, out, overwrite=True) (deletes it), or pick another out"
                )
            overwriting = True
        else:
            overwriting = False
        self.progress = progress
        self.command = command if command is not None else command_line()
        self.logger: Logger | None = None  # opened by run()
        self.device = resolve_device(config.run.device)
        env_cfg, algo_cfg = config.env, config.algo_config
        env_args = (self.device, env_cfg.backend, env_cfg.num_threads)
        # The evaluation env describes the spaces: the policy, then the optimizer (whose population size
        # may follow from the parameter count, as CMA-ES's), then the training envs, one slot per episode.
        self.eval_env = make_env(env_cfg.id, config.run.eval_episodes, *env_args, **env_cfg.make_args())
        if not _resuming and isinstance(self.eval_env, GymVectorEnv) and is_user_env(env_cfg.id, env_cfg.entry_point):
            check_user_env(env_cfg.id, env_cfg.entry_point, **env_cfg.kwargs)
        obs_dim = self.eval_env.obs_dim
        if policy is None:
            policy = config.policy.build(obs_dim, self.eval_env.single_action_space,
                                         self.eval_env.single_observation_space)
            # a conv policy with VBN: its reference batch, from random play (the same again on a resume)
            policy = vbn.with_reference(policy, self.eval_env, config.policy.vbn, config.run.seed)
        else:  # the run's config names the policy it trains (a module passed as an object: kind 'module')
            config = dataclasses.replace(config, policy=config.policy.describing(policy))
        self.config = config
        check_fits(policy, self.eval_env.single_action_space, self.eval_env.single_observation_space, name=env_cfg.id)
        self.policy = policy
        generator = torch.Generator().manual_seed(config.run.seed)
        center = policy.init_params(generator).to(self.device)
        self.optimizer = make_optimizer(config.run.algo, center, algo_cfg, seed=config.run.seed, device=self.device,
                                        layout=policy.param_layout(), init_scale=init_scale_for(policy, algo_cfg))
        # The training envs, made by the evaluator (here or on Ray workers; device None: the workers' own)
        self.envs = EnvFactory(env_cfg.id, env_cfg.backend, config.run.device, env_cfg.num_threads,
                               dict(env_cfg.kwargs), env_cfg.entry_point)
        self.normalizer = ObsNormalizer(obs_dim, device=self.device) if config.policy.normalize_obs else None
        self.generation = 0
        self.env_steps = 0
        self.episodes = 0
        self.eval_env_steps = 0
        self.wall_time = 0.0
        self.best_eval_return = float("-inf")
        self.last_eval_return = float("-inf")
        self.solution = center.clone()
        self.solved = False
        self.history: list[dict[str, Any]] = []
        self._warned_nonfinite = False
        self._best_record: dict[str, Any] | None = None
        self._best_genome: dict[str, Any] | None = None  # the best record's params named compactly, or None
        self._evaluator = evaluator  # None: made by the first generation (Ray starts then)
        self._owns_evaluator = evaluator is None
        if overwriting and self.run_dir is not None:  # only once everything above has worked
            shutil.rmtree(self.run_dir)
        # Where a failure leaves the state (Trainer._stopped_by): "step" from tell() to the end of the generation,
        # "row" while its metrics row is written, "checkpoint" while a checkpoint is (and after such a write
        # failed); None: the last finished generation's, consistent, fit for a checkpoint
        self._busy: str | None = None
        self._current = 0  # the generation being run
        self._checkpointed: int | None = None  # the generation of the checkpoint on disk, if any

    # -- one generation --------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        """Run one generation; returns its metrics row."""
        cfg = self.config
        start = time.perf_counter()
        settings = EvalSettings(
            episodes=cfg.env.episodes,
            max_steps=cfg.env.max_steps,
            seed=derive_seed(cfg.run.seed, self.generation),
            normalizer=self.normalizer,
            collect_obs_stats=self.normalizer is not None,
            compile=cfg.run.compile,
            reward_shift=cfg.env.reward_shift,
        )
        evaluator = self.evaluator
        counts_before = evaluator.problem_counts()
        result = evaluator.evaluate(self.optimizer.ask_population(), settings, self.optimizer)
        self._busy, self._current = "step", self.generation + 1
        metrics = self.optimizer.tell(result.returns)
        if self.normalizer is not None and result.obs_stats is not None:
            self.normalizer.merge(result.obs_stats)
        self.generation += 1
        self.env_steps += result.env_steps
        self.episodes += result.episode_lengths.numel()
        row: dict[str, Any] = {"generation": self.generation, "env_steps": self.env_steps, "episodes": self.episodes}
        row.update(metrics)
        row["train/nonfinite_episodes"] = result.nonfinite_episodes
        for name, count in evaluator.problem_counts().items():  # bad input the envs absorbed this generation
            row[f"train/{name}"] = count - counts_before.get(name, 0)
        row.update(evaluator.last_metrics)
        if result.nonfinite_episodes and not self._warned_nonfinite:
            self._warned_nonfinite = True  # once per run; the metrics count every generation
            warnings.warn(
                f"{cfg.env.id}: {result.nonfinite_episodes} episodes of generation {self.generation} returned NaN or "
                "infinite rewards, or their policy's output was not finite; their members rank last (see "
                "train/nonfinite_episodes)",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.generation % cfg.run.eval_every == 0 or self._budget_spent():
            row.update(self.evaluate_solution())
        elapsed = time.perf_counter() - start
        self.wall_time += elapsed
        row["time/wall"] = self.wall_time
        row["time/env_steps_per_s"] = result.env_steps / max(elapsed, 1e-9)
        self._busy = None
        return row

    @property
    def evaluator(self) -> Evaluator:
        """The population evaluator the config asks for (made on first use: Ray starts with the first
        generation of a distributed run)."""
        if self._evaluator is None:
            run = self.config.run
            self._evaluator = make_evaluator(self.policy, self.envs, run.workers, address=run.ray_address,
                                             include_dashboard=run.ray_dashboard, shard_size=run.shard_size)
            if hasattr(self._evaluator, "on_head_lost") and self.run_dir is not None:  # a Ray head lost: say
                self._evaluator.on_head_lost = lambda what: str(self._stopped_by(WorkersLost(what)))  # how to go on
        return self._evaluator

    def close(self) -> None:
        """Release the evaluator the trainer made: its envs, and its Ray workers and local Ray instance, if any
        (an evaluator passed in is the caller's to close)."""
        if self._evaluator is not None and self._owns_evaluator:
            self._evaluator.close()
            self._evaluator = None

    def evaluate_solution(self) -> dict[str, float]:
        """Evaluate the optimizer's solution now (``run.eval_episodes`` episodes from fixed seeds); keeps the best
        evaluated one (``best_policy.pt``) and returns the ``eval/...`` metrics."""
        cfg = self.config
        center = self.optimizer.center
        result = evaluate(
            self.policy,
            center[None],
            self.eval_env,
            cfg.run.eval_episodes,
            cfg.env.max_steps,
            normalizer=self.normalizer,
            seed=derive_seed(cfg.run.seed, -1),
            compile=cfg.run.compile,
        )
        episode_returns = result.episode_returns[0]
        mean = float(episode_returns.mean())
        self.eval_env_steps += result.env_steps
        self.last_eval_return = mean
        if mean > self.best_eval_return:
            self.best_eval_return = mean
            self.solution = center.clone()
            # With the normalizer as it is now: the statistics this solution was evaluated with.
            self._best_record = self._policy_record(center, mean)
            self._best_genome = self.optimizer.center_genome()
            if self.run_dir is not None:
                atomic_save(self._best_record, self.run_dir / "best_policy.pt")
        if cfg.run.target is not None and mean >= cfg.run.target:
            self.solved = True
        return {
            "eval/return_mean": mean,
            "eval/return_std": float(episode_returns.std(unbiased=False)),
            "eval/best_return": self.best_eval_return,
            "eval/env_steps": self.eval_env_steps,
        }

    def best_policy(self) -> DeployedPolicy:
        """The best evaluated solution so far as a deployable module, with the observation statistics
        it was evaluated with (what ``best_policy.pt`` holds; also for runs without a directory)."""
        record = self._best_record or self._policy_record(self.solution, self.best_eval_return)
        policy, params, action_space, normalizer = unpack_policy_record(record, getattr(self.policy, "module", None))
        return DeployedPolicy.build(policy, params, action_space, normalizer)

    def _policy_record(self, params: torch.Tensor, eval_return: float) -> dict[str, Any]:
        return policy_record(
            self.policy,
            params,
            self.eval_env.single_action_space,
            self.normalizer,
            self.config.env.id,
            env={"entry_point": self.config.env.entry_point, "kwargs": dict(self.config.env.kwargs),
                 "max_steps": self.config.env.max_steps},
            generation=self.generation,
            env_steps=self.env_steps,
            eval_return=eval_return,
        )

    def _budget_spent(self) -> bool:
        run = self.config.run
        return (run.generations is not None and self.generation >= run.generations) or (
            run.steps is not None and self.env_steps >= run.steps
        )

    def done(self) -> bool:
        return self.solved or self._budget_spent()

    # -- the whole run ---------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train until the budget is spent or the target is reached; returns the result."""
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", self.config.to_dict())
            record_command(self.run_dir, self.command)
        if self.config.log.capture_video is not None:
            check_renderable(self.config.env.id, self.run_dir)
        # continues a resumed run's files: what the killed run wrote after its checkpoint is dropped
        self.logger = Logger(self.run_dir, self.config.log, self.config.to_dict(), generation=self.generation,
                             env_steps=self.env_steps)
        bar = _progress_bar(self.config.run.generations, self.generation) if self.progress else None
        stop = _StopRequest()
        try:
            with stop:
                self._loop(bar, stop)
        except Exception as err:
            if self.run_dir is None:
                raise
            raise self._stopped_by(err) from err
        finally:
            self.close()
            self.logger.close()
            if bar is not None:
                bar.close()
        if self.run_dir is not None:
            self.save_checkpoint()
        return TrainResult(
            run_dir=self.run_dir,
            generations=self.generation,
            env_steps=self.env_steps,
            wall_time=self.wall_time,
            best_eval_return=self.best_eval_return,
            final_eval_return=self.last_eval_return,
            solved=self.solved,
            interrupted=stop.requested,
            solution=self.solution,
            history=self.history,
        )

    def _loop(self, bar, stop: _StopRequest) -> None:
        while not self.done() and not stop.requested:
                row = self.step()
                self.history.append(row)
                if self.run_dir is not None and len(self.history) > HISTORY_WINDOW:
                    del self.history[0]  # on disk in metrics.jsonl: memory stays flat over a long run
                assert self.logger is not None  # opened by run()
                self._busy = "row"
                self.logger.write(row)
                self._busy = None
                every = self.config.log.capture_video
                if every is not None and self.generation % every == 0 and self._best_record is not None:
                    self.logger.capture_video(self.generation, self.env_steps, max_steps=self.config.env.max_steps,
                                              seed=self.config.run.seed)
                if self.run_dir is not None and self.generation % self.config.run.checkpoint_every == 0:
                    self.save_checkpoint()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        best=f"{self.best_eval_return:.1f}",
                        steps=self.env_steps,
                        sps=f"{row['time/env_steps_per_s']:.3g}",
                    )

    def _stopped_by(self, err: Exception) -> Exception:
        """The one-line error a run stopped by ``err`` ends with: what failed, which checkpoint to continue from
        (the last finished generation's, written now where that is possible) and the command that does."""
        what = str(err) if isinstance(err, WorkersLost) else first_line(err, limit=300, typed=False)
        path = self.run_dir / "checkpoints" / "last.pt" if self.run_dir is not None else None
        if self._busy == "checkpoint":  # the checkpoint itself failed: the one before it stands
            note = f"{what} (checkpoint of generation {self.generation})"
        elif self._busy == "row":
            note = f"{what} (metrics row of generation {self.generation})"
        else:
            note = f"{what} (generation {self._current if self._busy == 'step' else self.generation + 1})"
        saved = None
        if self._busy is None:  # the state is the last finished generation's: keep it
            try:
                saved = f"checkpoint of generation {self.generation} written to {self.save_checkpoint()}"
            except OSError as save_err:
                note += f"; writing its checkpoint failed too ({first_line(save_err, typed=False)})"
        if saved is None:
            saved = (f"the previous checkpoint, of generation {self._checkpointed}, is intact at {path}"
                     if self._checkpointed is not None else "no checkpoint was written yet")
        message = f"{note}; {saved}; continue with: neuroevo train --resume {self.run_dir}"
        if isinstance(err, WorkersLost):
            return WorkersLost(message)
        return ValueError(message) if isinstance(err, ValueError) else RuntimeError(message)

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "generation": self.generation,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "eval_env_steps": self.eval_env_steps,
            "wall_time": self.wall_time,
            "best_eval_return": self.best_eval_return,
            "last_eval_return": self.last_eval_return,
            "solved": self.solved,
            # the compact form leaves out what a resumed run rebuilds from the policy's init (the GA's root)
            "optimizer": (self.optimizer.compact_state_dict() if self.policy.reproducible_init
                          else self.optimizer.state_dict()),
            "normalizer": self.normalizer.state_dict() if self.normalizer is not None else None,
            "solution": self._solution_record(),
        }

    def _solution_record(self) -> dict[str, Any]:
        """The best evaluated policy as the checkpoint keeps it: its params named by their genome where the
        optimizer names its center so (the GA's lineage: a few KB whatever D is), with their digest; else the
        params themselves (:func:`~neuroevo.checkpoint.read_policy` takes either). Before the first evaluation
        it is the run's starting point, which a resume builds again where the policy's init is reproducible
        (genome None)."""
        record = self._best_record or self._policy_record(self.solution, self.best_eval_return)
        named = self.policy.reproducible_init and self.optimizer.has_genomes
        if not named or (self._best_record is not None and self._best_genome is None):
            return record
        params = record["params"]
        return {**record, "params": None, "genome": self._best_genome, "num_params": params.numel(),
                "params_digest": tensor_digest(params)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        solution = state["solution"]
        saved, ours = solution["policy"], self.policy.spec()
        size = solution["params"].numel() if solution["params"] is not None else solution["num_params"]
        if saved.get("kind") != ours["kind"] or size != self.policy.num_params:
            raise ValueError(
                f"the checkpoint's policy ({saved.get('kind')}, {size} parameters) "
                f"is not this trainer's ({self.policy!r}, {self.policy.num_params} parameters)"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self._best_genome = solution.get("genome")
        evaluated = float(state["best_eval_return"]) > float("-inf")  # else: the run's starting point
        if solution["params"] is None:  # named: rebuilt (by the optimizer from its genome), checked by its digest
            genome = self._best_genome
            params = (self.optimizer.genome_params(genome) if genome is not None else self.solution).detach().cpu()
            if tensor_digest(params) != solution["params_digest"]:
                raise ValueError("the best policy rebuilt from its genome differs from the one saved")
            solution = {k: v for k, v in solution.items() if k not in ("genome", "num_params", "params_digest")}
            solution["params"] = params
        if (state["normalizer"] is None) != (self.normalizer is None):
            raise ValueError("checkpoint and config disagree on policy.normalize_obs")
        if self.normalizer is not None:
            self.normalizer.load_state_dict(state["normalizer"])
        self.generation = int(state["generation"])
        self.env_steps = int(state["env_steps"])
        self.episodes = int(state["episodes"])
        self.eval_env_steps = int(state["eval_env_steps"])
        self.wall_time = float(state["wall_time"])
        self.best_eval_return = float(state["best_eval_return"])
        self.last_eval_return = float(state["last_eval_return"])
        self.solved = bool(state["solved"])
        self._best_record = solution if evaluated else None
        self.solution = solution["params"].to(self.device)

    def save_checkpoint(self) -> Path:
        if self.run_dir is None:
            raise ValueError("this trainer keeps no files (out=None): there is nowhere to write a checkpoint")
        path = self.run_dir / "checkpoints" / "last.pt"
        self._busy = "checkpoint"
        atomic_save(self.state_dict(), path)
        self._busy = None
        self._checkpointed = self.generation
        return path

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        overrides: dict[str, Any] | None = None,
        *,
        policy: Policy | None = None,
        progress: bool = False,
        command: str | None = None,
    ) -> Trainer:
        """Continue the run in ``run_dir`` from its last checkpoint. ``overrides`` may extend the
        budget (``{"run": {"generations": 200}}``); the trajectory is the one an uninterrupted run with
        the same config would have taken."""
        run_dir = Path(run_dir)
        path = run_dir / "checkpoints" / "last.pt"
        remove_stale_temporaries(run_dir)  # left by a writer killed between writing and renaming
        if not path.exists() and (run_dir / "config.json").is_file():
            # killed before its first checkpoint: the run starts again from its config, at generation 0
            config = config_from_dict(_read_json(run_dir / "config.json"))
            if overrides:
                config = config_from_dict(overrides, config)
            # (its metrics rows, if a kill left any, are dropped when run() opens the logger at generation 0)
            trainer = cls(config, run_dir, policy=policy, progress=progress, command=command, _resuming=True)
            return trainer
        state = load_file(path, CHECKPOINT_FORMAT)
        if not isinstance(state["config"], dict):
            raise ValueError(f"{path}: malformed checkpoint: its config is not a table of settings")
        config = config_from_dict(state["config"])
        _check_same_run(run_dir, config, path)
        if overrides:
            config = config_from_dict(overrides, config)
        trainer = cls(config, run_dir, policy=policy, progress=progress, command=command, _resuming=True)
        try:
            trainer.load_state_dict(state)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
            raise ValueError(
                f"{path}: malformed checkpoint, it does not fit its own config ({first_line(err)})"
            ) from None
        trainer._checkpointed = trainer.generation
        trainer.solved = trainer.solved and config.run.target is not None
        best = run_dir / "best_policy.pt"
        if not best.exists() and trainer.best_eval_return > float("-inf"):  # a run carried without it (an archive)
            atomic_save(trainer._best_record, best)
        return trainer


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({first_line(err)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a table of settings")
    return data


def _check_same_run(run_dir: Path, config: Config, path: Path) -> None:
    """A checkpoint copied in from another run (another task, algorithm or seed) is refused: resuming it would
    write that run's generations over this directory's."""
    if not (run_dir / "config.json").is_file():
        return
    try:
        own = config_from_dict(_read_json(run_dir / "config.json"))
    except ValueError:
        return  # an unreadable config.json: the checkpoint's config is the run's (run() rewrites the file)
    for name, ours, theirs in (("env.id", own.env.id, config.env.id), ("run.algo", own.run.algo, config.run.algo),
                               ("run.seed", own.run.seed, config.run.seed)):
        if ours != theirs:
            raise ValueError(
                f"{path}: a checkpoint of another run ({name} {theirs!r}; {run_dir}/config.json has {ours!r}); "
                "refusing to resume it over this run directory"
            )


class _StopRequest:
    """While active, the first SIGINT or SIGTERM asks the run to stop after the current generation
    (which is then checkpointed) instead of killing it mid-way; a second SIGINT interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def _progress_bar(total: int | None, initial: int):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI)
    return tqdm(total=total, initial=initial, unit="gen", dynamic_ncols=True, disable=None)
