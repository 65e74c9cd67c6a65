"""One runner for the Stable-Baselines3 baselines (PPO, SAC, TD3): budget, metrics, saves and resume.

:func:`train_baseline` trains ``algo`` on gymnasium's env with the task card's table of that name, under the run's
budget (``run.steps``) and seed, and writes the learning curve to the run's :class:`~neuroevo.logger.Logger` in
the rows the :class:`~neuroevo.trainer.Trainer` writes: ``generation`` (updates so far: PPO's rollouts, SAC's and
TD3's rounds of gradient steps), ``env_steps`` (training env steps), ``episodes``, ``time/wall`` (training and
evaluations, as the Trainer counts it), ``eval/return_mean`` / ``eval/return_std`` / ``eval/best_return`` over
``run.eval_episodes`` deterministic episodes (same start states every time), ``eval/env_steps``,
``time/env_steps_per_s``, and SB3's own ``train/...`` losses. Each algorithm contributes only its
:class:`Baseline`: how to check its settings, build its model and count its updates (``neuroevo.baselines.ppo``,
``neuroevo.baselines.offpolicy``).

Saves and resume: every ``save_every`` env steps (at the next update boundary) the run writes
``checkpoints/step<N>/`` (``model.zip``, the replay buffer of SAC / TD3, VecNormalize's statistics, and
``state.pkl``: the metrics callback's state and the global RNG states of Python, NumPy and torch), then points
``checkpoints/last.json`` at it, each file atomically (:func:`neuroevo.checkpoint.atomic_write`), and removes
the older save: a kill at any moment leaves a complete save. :func:`resume_baseline` continues from it with
``learn(reset_num_timesteps=False)``, drops the metrics rows written after it, and restores the RNG states.
What resume cannot restore is the training envs' mid-episode state: they restart their episodes (from seeds
derived from the run's seed and the save's step), so a resumed run is a valid run of the same settings but
not bit-identical to an uninterrupted one (docs/guides/compare.md says what differs).
"""

from __future__ import annotations

import io
import json
import math
import pickle
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from neuroevo.baselines.config import BaselineConfig
from neuroevo.checkpoint import atomic_write, atomic_write_json
from neuroevo.config import Config, config_from_dict
from neuroevo.envs.user import resolve_env_id
from neuroevo.logger import Logger, command_line, record_command
from neuroevo.seeding import derive_seed

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class Baseline:
    """What the runner needs from one SB3 algorithm."""

    name: str
    """display name (``PPO``, ``SAC``, ``TD3``)"""
    model_class: type[BaseAlgorithm]
    check: Callable[[Any], None]
    """a one-line ``ValueError`` for settings SB3 cannot run (the card's table is the argument)"""
    build: Callable[[Any, VecEnv, int], BaseAlgorithm]
    """(table, training envs, seed) -> the SB3 model"""
    update_steps: Callable[[Any], int]
    """env steps of one update ("generation") under the table's settings"""


def baseline(algo: str) -> Baseline:
    """The :class:`Baseline` named ``algo`` (``ppo``, ``sac``, ``td3``)."""
    if algo == "ppo":
        from neuroevo.baselines.ppo import PPO_BASELINE

        return PPO_BASELINE
    if algo in ("sac", "td3"):
        from neuroevo.baselines.offpolicy import OFF_POLICY_BASELINES

        return OFF_POLICY_BASELINES[algo]
    raise ValueError(f"unknown baseline {algo!r}; choose from ppo, sac, td3")


def settings(config: Config, algo: str) -> Any:
    """The card's table of ``algo`` (``config.ppo``, ``config.sac``, ``config.td3``)."""
    return getattr(config, algo)


def check_settings(config: Config, algo: str) -> None:
    """Raise a one-line ``ValueError`` for settings of ``algo`` that SB3 cannot run."""
    table: BaselineConfig = settings(config, algo)
    for name in ("num_envs", "eval_points"):
        if getattr(table, name) <= 0:
            raise ValueError(f"{algo}.{name} must be positive, got {getattr(table, name)}")
    if table.save_every is not None and table.save_every <= 0:
        raise ValueError(f"{algo}.save_every must be a positive number of env steps or unset, got {table.save_every}")
    activation = getattr(table, "activation", "tanh")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{algo}.activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    baseline(algo).check(table)
    frames = getattr(table, "frame_stack", 1)
    if getattr(table, "env_wrapper", None) == "atari":
        from neuroevo.envs.atari import Preprocessing, is_atari

        if not is_atari(config.env.id):
            raise ValueError(f"{algo}.env_wrapper = 'atari' needs an ALE/... env, got {config.env.id}")
        stack = Preprocessing(**config.env.kwargs).frame_stack  # what the evaluations' env stacks
        if frames != stack:
            raise ValueError(f"{algo}.frame_stack ({frames}) must be the env's frame_stack ({stack}): "
                             "the evaluations play the trained policy on the card's env")
    elif frames != 1:
        raise ValueError(f"{algo}.frame_stack is for env_wrapper = 'atari' (the evaluations do not stack frames "
                         f"of {config.env.id})")
    if algo in ("sac", "td3"):
        env = gym.make(resolve_env_id(config.env.id, config.env.entry_point), **config.env.kwargs)
        space = env.action_space
        env.close()
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"{algo} needs continuous (Box) actions; {config.env.id}'s are {space}")


def update_steps(config: Config, algo: str) -> int:
    """Env steps of one update of ``algo`` (the smallest budget it can run)."""
    return baseline(algo).update_steps(settings(config, algo))


def budget(config: Config, algo: str) -> int:
    """The run's env-step budget: ``run.steps``, else the Zoo's ``<algo>.steps``."""
    table = settings(config, algo)
    steps = config.run.steps if config.run.steps is not None else table.steps
    if steps is None:
        raise ValueError(f"{config.env.id}: {algo} needs a budget: set run.steps (--steps)")
    need = update_steps(config, algo)
    if steps < need:
        raise ValueError(
            f"budget {steps} env steps is too small for one {baseline(algo).name} update on {config.env.id} "
            f"({describe_update(config, algo)}): use at least {need}"
        )
    return steps


def describe_update(config: Config, algo: str) -> str:
    table = settings(config, algo)
    per_env = table.n_steps if algo == "ppo" else table.train_freq
    return f"{table.num_envs} envs x {per_env} steps"


def warn_if_untuned(config: Config, algo: str = "ppo") -> bool:
    """Warn (one line) when the task has no tuned settings for ``algo``; returns whether it has them."""
    if settings(config, algo).source is None:
        name = baseline(algo).name
        warnings.warn(
            f"{config.env.id} has no {name} hyperparameters from the RL Zoo (its task card has no [{algo}] table "
            f"with a source): {name} runs with Stable-Baselines3's defaults",
            UserWarning,
            stacklevel=2,
        )
        return False
    return True


def make_training_envs(config: Config, algo: str, seed: int) -> VecEnv:
    """``num_envs`` Monitor-wrapped copies of gymnasium's env in a DummyVecEnv (VecNormalize with ``normalize``;
    for ``env_wrapper = "atari"``, the Zoo's Atari pipeline: :func:`atari_training_envs`)."""
    table = settings(config, algo)
    env_id = resolve_env_id(config.env.id, config.env.entry_point)  # a user's env: imported / registered
    if getattr(table, "env_wrapper", None) == "atari":
        return atari_training_envs(env_id, table, seed, config.env.max_steps, dict(config.env.kwargs))
    env: VecEnv = make_vec_env(env_id, n_envs=table.num_envs, seed=seed, env_kwargs=dict(config.env.kwargs))
    if table.normalize:
        env = VecNormalize(env, gamma=table.gamma)
    return env


def atari_training_envs(env_id: str, table: Any, seed: int, max_steps: int | None, settings: dict[str, Any]) -> VecEnv:
    """The RL Zoo's Atari training envs: gymnasium's ``ALE/...`` env without its own frame skip, SB3's
    ``AtariWrapper`` (no-ops, frame skip with a max over the last two frames, 84x84 grayscale, a life lost ends the
    episode, FIRE at reset where the game has it, rewards clipped to their sign: the Zoo trains so), the card's time
    limit in agent steps, and ``VecFrameStack`` of ``table.frame_stack`` frames. The card's preprocessing settings
    (``[env.kwargs]``) set the no-ops, frame skip, screen size and sticky actions; evaluations run on the card's own
    protocol instead (:class:`DeterministicEvaluator`)."""
    from stable_baselines3.common.atari_wrappers import AtariWrapper
    from stable_baselines3.common.vec_env import VecFrameStack

    from neuroevo.envs.atari import Preprocessing

    pre = Preprocessing(**settings).check(env_id)
    steps = max_steps or pre.default_max_steps

    def wrap(env: gym.Env) -> gym.Env:
        env = AtariWrapper(env, noop_max=pre.noop_max, frame_skip=pre.frame_skip, screen_size=pre.screen_size)
        return gym.wrappers.TimeLimit(env, max_episode_steps=int(steps))

    env = make_vec_env(env_id, n_envs=table.num_envs, seed=seed, env_kwargs=pre.gym_make_kwargs, wrapper_class=wrap)
    return VecFrameStack(env, n_stack=table.frame_stack) if table.frame_stack > 1 else env


@dataclass
class BaselineResult:
    """What a finished baseline run gives back (the fields of ``TrainResult`` that a comparison reads)."""

    run_dir: Path | None
    generations: int
    """updates"""
    env_steps: int
    wall_time: float
    best_eval_return: float
    final_eval_return: float
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None
    """env steps of the save this run continued from (None: it started from zero)"""


class DeterministicEvaluator:
    """``episodes`` episodes of gymnasium's env from fixed seeds, stepped in lock-step with one batched
    ``model.predict(deterministic=True)`` per step; observations pass through the training
    ``VecNormalize`` statistics when there are some. Returns are the env's own (unnormalized)."""

    def __init__(self, env_id: str, episodes: int, seed: int, max_steps: int | None = None, **env_kwargs: Any):
        from neuroevo.envs.gym_backend import make_gymnasium_env

        # the env every evaluation uses (neuroevo eval's): for an ALE id, the card's preprocessing and time limit
        self.envs = [make_gymnasium_env(env_id, max_episode_steps=max_steps, **env_kwargs) for _ in range(episodes)]
        self.seeds = [derive_seed(seed, -1) % 2**31 + i for i in range(episodes)]

    def __call__(self, model: BaseAlgorithm) -> tuple[np.ndarray, int]:
        """Returns (episode returns [episodes], env steps taken)."""
        normalizer = model.get_vec_normalize_env()
        obs = np.stack([env.reset(seed=s)[0] for env, s in zip(self.envs, self.seeds, strict=True)])
        returns = np.zeros(len(self.envs))
        active = np.ones(len(self.envs), dtype=bool)
        steps = 0
        while active.any():
            idx = np.flatnonzero(active)
            batch = obs[idx] if normalizer is None else normalizer.normalize_obs(obs[idx])
            actions, _ = model.predict(batch, deterministic=True)
            for j, action in zip(idx, actions, strict=True):
                obs[j], reward, terminated, truncated, _ = self.envs[j].step(action)
                returns[j] += float(reward)
                steps += 1
                active[j] = not (terminated or truncated)
        return returns, steps

    def close(self) -> None:
        for env in self.envs:
            env.close()


#: the metrics callback's counters that a save keeps
STATE_KEYS = ("history", "episodes", "eval_env_steps", "best", "next_eval", "next_save", "elapsed", "last")


class MetricsCallback(BaseCallback):
    """Evaluates the policy every ``eval_interval`` training env steps (at the start of the first rollout past
    it, i.e. after the update that consumed those steps) and once at the end; each evaluation is a metrics row,
    written to the run's :class:`~neuroevo.logger.Logger` as soon as it is made. With ``save`` it calls
    ``save(self)`` every ``save_every`` env steps, after that step's evaluation."""

    def __init__(self, evaluator: DeterministicEvaluator, eval_interval: int, update_steps: int, logger: Logger,
                 save_every: int | None = None, save: Callable[[MetricsCallback], None] | None = None):
        super().__init__()
        self.evaluator = evaluator
        self.eval_interval = eval_interval
        self.update_steps = update_steps
        self.metrics = logger
        self.save_every = save_every
        self.save = save
        self.history: list[dict[str, Any]] = []
        self.episodes = 0
        self.eval_env_steps = 0
        self.best = -math.inf
        self.next_eval = eval_interval
        self.next_save = save_every
        self.elapsed = 0.0  # wall time of the run before this process (a resumed run continues the clock)
        self.last = (0, 0.0)  # (env steps, wall time) at the previous row
        self._start = 0.0

    def state(self) -> dict[str, Any]:
        state = {key: getattr(self, key) for key in STATE_KEYS}
        state["elapsed"] = self.wall()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for key in STATE_KEYS:
            setattr(self, key, state[key])

    def wall(self) -> float:
        return self.elapsed + time.perf_counter() - self._start

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        self.episodes += int(np.sum(self.locals["dones"]))
        return True

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.next_eval:
            self._evaluate()
        if self.save_every is not None and self.next_save is not None and self.save is not None and \
                self.num_timesteps >= self.next_save:
            self.next_save = (self.num_timesteps // self.save_every + 1) * self.save_every
            self.save(self)

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["env_steps"] != self.num_timesteps:
            self._evaluate()

    def _evaluate(self) -> None:
        returns, steps = self.evaluator(self.model)
        self.eval_env_steps += steps
        mean = float(returns.mean())
        self.best = max(self.best, mean)
        wall = self.wall()
        row: dict[str, Any] = {
            "generation": self.num_timesteps // self.update_steps,
            "env_steps": self.num_timesteps,
            "episodes": self.episodes,
            "eval/return_mean": mean,
            "eval/return_std": float(returns.std()),
            "eval/best_return": self.best,
            "eval/env_steps": self.eval_env_steps,
            "time/wall": wall,
            "time/env_steps_per_s": (self.num_timesteps - self.last[0]) / max(wall - self.last[1], 1e-9),
        }
        train = {k: float(v) for k, v in self.model.logger.name_to_value.items() if k.startswith("train/")}
        row.update(train)
        self.last = (self.num_timesteps, wall)
        self.next_eval = (self.num_timesteps // self.eval_interval + 1) * self.eval_interval
        self.history.append(row)
        self.metrics.write(row)


def _rng_state(model: BaseAlgorithm) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }


def _set_rng_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    model.action_space.np_random.bit_generator.state = state["action_space"]


def save_checkpoint(run_dir: Path, algo: str, model: BaseAlgorithm, callback: MetricsCallback) -> Path:
    """``run_dir/checkpoints/step<N>/`` with everything a resume needs, then ``last.json`` pointing at it;
    the previous save is removed once the new one is complete."""
    root = run_dir / CHECKPOINTS
    step_dir = root / f"step{model.num_timesteps:09d}"
    atomic_write(step_dir / "model.zip", lambda f: model.save(cast(io.BufferedIOBase, f)))
    if isinstance(model, OffPolicyAlgorithm):
        atomic_write(step_dir / "replay_buffer.pkl", lambda f: pickle.dump(model.replay_buffer, f, protocol=4))
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        atomic_write(step_dir / "vecnormalize.pkl", lambda f: pickle.dump(normalizer, f))
    state = {"num_timesteps": model.num_timesteps, "callback": callback.state(), "rng": _rng_state(model)}
    atomic_write(step_dir / "state.pkl", lambda f: pickle.dump(state, f))
    previous = last_checkpoint(run_dir)
    atomic_write_json(root / "last.json", {"dir": step_dir.name, "env_steps": model.num_timesteps,
                                                   "baseline": algo})
    if previous is not None and previous != step_dir:
        shutil.rmtree(previous, ignore_errors=True)
    return step_dir


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The directory of the run's last complete save, or None."""
    path = Path(run_dir) / CHECKPOINTS / "last.json"
    if not path.exists():
        return None
    return path.parent / json.loads(path.read_text())["dir"]


def _load(algo: str, config: Config, step_dir: Path, seed: int) -> tuple[BaseAlgorithm, dict[str, Any]]:
    state = pickle.loads((step_dir / "state.pkl").read_bytes())
    # the envs restart their episodes, from seeds of their own for the part of the run after the save
    env = make_training_envs(config, algo, derive_seed(seed, state["num_timesteps"]) % 2**31)
    if (step_dir / "vecnormalize.pkl").exists():
        env = VecNormalize.load(str(step_dir / "vecnormalize.pkl"), env.venv if isinstance(env, VecNormalize) else env)
    model = baseline(algo).model_class.load(step_dir / "model.zip", env=env, device="cpu")
    if isinstance(model, OffPolicyAlgorithm):
        model.load_replay_buffer(step_dir / "replay_buffer.pkl")
    model._last_obs = None  # learn() resets the new envs
    _set_rng_state(model, state["rng"])
    return model, state


def train_baseline(algo: str, config: Config, out: str | Path | None = None, *,
                   command: str | None = None) -> BaselineResult:
    """Train ``algo`` under ``run.steps`` (else ``<algo>.steps``) with seed ``run.seed``; log, save, return.

    ``out`` receives ``config.json``, ``command.txt`` (``command``, default this process's command line), the
    metrics in the formats of ``config.log`` (``metrics.jsonl``, ``progress.csv``, ... written as the run goes;
    :mod:`neuroevo.logger`), the saves under ``checkpoints/`` while it runs, and at the end ``model.zip`` and,
    with ``normalize``, ``vecnormalize.pkl``. Raises ``ValueError`` if ``out`` already holds a run (continue
    one with :func:`resume_baseline`).
    """
    run_dir = Path(out) if out is not None else None
    if run_dir is not None and (run_dir / "metrics.jsonl").exists():
        raise ValueError(f"{run_dir} already holds a run; pick another --out (or resume it)")
    return _train(algo, config, run_dir, command, None)


def resume_baseline(run_dir: str | Path, *, command: str | None = None) -> BaselineResult:
    """Continue the run in ``run_dir`` from its last save (``checkpoints/last.json`` names the baseline,
    ``config.json`` holds its settings)."""
    run_dir = Path(run_dir)
    if last_checkpoint(run_dir) is None:
        raise ValueError(f"{run_dir} holds no save of a baseline run (no {CHECKPOINTS}/last.json)")
    algo = json.loads((run_dir / CHECKPOINTS / "last.json").read_text())["baseline"]
    config = config_from_dict(json.loads((run_dir / "config.json").read_text()))
    return _train(algo, config, run_dir, command, last_checkpoint(run_dir))


def _train(algo: str, config: Config, run_dir: Path | None, command: str | None,
           step_dir: Path | None) -> BaselineResult:
    check_settings(config, algo)
    table: BaselineConfig = settings(config, algo)
    steps = budget(config, algo)
    if step_dir is None:
        warn_if_untuned(config, algo)
    if config.log.capture_video is not None:
        warnings.warn(f"log.capture_video films neuroevo's optimizers, not the {algo} baseline: no videos of it",
                      UserWarning, stacklevel=3)
    threads = torch.get_num_threads()
    if table.threads is not None:
        torch.set_num_threads(table.threads)
    seed = config.run.seed
    evaluator = DeterministicEvaluator(resolve_env_id(config.env.id, config.env.entry_point), config.run.eval_episodes,
                                       seed, config.env.max_steps, **config.env.kwargs)
    logger: Logger | None = None
    try:
        state: dict[str, Any] | None = None
        if step_dir is not None:
            model, state = _load(algo, config, step_dir, seed)
        else:
            model = baseline(algo).build(table, make_training_envs(config, algo, seed), seed)
        unit = update_steps(config, algo)
        start = model.num_timesteps
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            if state is None:
                atomic_write_json(run_dir / "config.json", config.to_dict())
            record_command(run_dir, command if command is not None else command_line())
        logger = Logger(run_dir, config.log, config.to_dict(), generation=start // unit, env_steps=start)
        save = None
        if run_dir is not None and table.save_every is not None:
            save = _saver(run_dir, model, algo)
        callback = MetricsCallback(evaluator, max(unit, steps // table.eval_points), unit, logger,
                                   table.save_every, save)
        if state is not None:
            callback.restore(state["callback"])
        model.learn(total_timesteps=steps - start, callback=callback, reset_num_timesteps=state is None)
    finally:
        evaluator.close()
        if logger is not None:
            logger.close()
        torch.set_num_threads(threads)
    if run_dir is not None:
        atomic_write(run_dir / "model.zip", lambda f: model.save(cast(io.BufferedIOBase, f)))
        normalizer = model.get_vec_normalize_env()
        if normalizer is not None:
            atomic_write(run_dir / "vecnormalize.pkl", lambda f: pickle.dump(normalizer, f))
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # finished: the saves (replay buffers) go
    last = callback.history[-1]
    return BaselineResult(
        run_dir=run_dir,
        generations=int(last["generation"]),
        env_steps=int(last["env_steps"]),
        wall_time=float(last["time/wall"]),
        best_eval_return=callback.best,
        final_eval_return=float(last["eval/return_mean"]),
        history=callback.history,
        resumed_from=start if state is not None else None,
    )


def _saver(run_dir: Path, model: BaseAlgorithm, algo: str) -> Callable[[MetricsCallback], None]:
    def save(callback: MetricsCallback) -> None:
        save_checkpoint(run_dir, algo, model, callback)

    return save
