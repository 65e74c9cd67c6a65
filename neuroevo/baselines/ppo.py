"""PPO from Stable-Baselines3 on gymnasium's env, with the task card's ``[ppo]`` settings (the RL Zoo's).

:func:`train_ppo` trains under the run's budget (``run.steps``) and seed and writes the learning curve
to ``metrics.jsonl`` in the rows the :class:`~neuroevo.trainer.Trainer` writes: ``generation`` (PPO
updates so far), ``env_steps`` (training env steps), ``episodes``, ``time/wall`` (training and
evaluations, as the Trainer counts it), ``eval/return_mean`` / ``eval/return_std`` / ``eval/best_return``
over ``run.eval_episodes`` deterministic episodes (same start states every time), ``eval/env_steps``,
``time/env_steps_per_s``, and SB3's own ``train/...`` losses.

Settings follow the Zoo: ``"lin_X"`` schedules decay X linearly to 0 over the run, ``normalize``
wraps the training envs in ``VecNormalize`` (observations and rewards, discounted with ``gamma``), the
training envs are a ``DummyVecEnv`` of ``num_envs`` Monitor-wrapped envs.
"""

from __future__ import annotations

import functools
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from neuroevo.baselines.config import PPOConfig
from neuroevo.config import Config
from neuroevo.envs.user import resolve_env_id
from neuroevo.logger import Logger, command_line, record_command
from neuroevo.seeding import derive_seed

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


@dataclass
class PPOResult:
    """What a finished PPO run gives back (the fields of ``TrainResult`` that a comparison reads)."""

    run_dir: Path | None
    generations: int
    """PPO updates"""
    env_steps: int
    wall_time: float
    best_eval_return: float
    final_eval_return: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _linear(initial: float, progress_remaining: float) -> float:
    return progress_remaining * initial


def schedule(value: float | str, name: str):
    """A Zoo hyperparameter value as SB3 takes it: a number, or ``"lin_X"`` -> X * progress_remaining."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return functools.partial(_linear, float(value[4:]))
        except ValueError:
            pass
    raise ValueError(f"ppo.{name} must be a number or 'lin_<number>' (the RL Zoo's linear schedule), got {value!r}")


def check_ppo_config(ppo: PPOConfig) -> None:
    """Raise a one-line ``ValueError`` for settings SB3 cannot run."""
    for name in ("num_envs", "n_steps", "batch_size", "n_epochs", "eval_points"):
        if getattr(ppo, name) <= 0:
            raise ValueError(f"ppo.{name} must be positive, got {getattr(ppo, name)}")
    if ppo.activation not in ACTIVATIONS:
        raise ValueError(f"ppo.activation must be one of {', '.join(ACTIVATIONS)}, got {ppo.activation!r}")
    schedule(ppo.lr, "lr")
    schedule(ppo.clip_range, "clip_range")


def rollout_steps(ppo: PPOConfig) -> int:
    """Env steps of one PPO update: ``num_envs * n_steps``."""
    return ppo.num_envs * ppo.n_steps


def build_model(config: Config, seed: int) -> PPO:
    """SB3's PPO on ``num_envs`` copies of gymnasium's ``config.env.id``, with ``config.ppo``'s settings."""
    ppo = config.ppo
    check_ppo_config(ppo)
    env_id = resolve_env_id(config.env.id, config.env.entry_point)  # a user's env: imported / registered
    env = make_vec_env(env_id, n_envs=ppo.num_envs, seed=seed, env_kwargs=dict(config.env.kwargs))
    if ppo.normalize:
        env = VecNormalize(env, gamma=ppo.gamma)
    policy_kwargs = {
        "net_arch": {"pi": list(ppo.hidden), "vf": list(ppo.hidden)},
        "activation_fn": ACTIVATIONS[ppo.activation],
        "ortho_init": ppo.ortho_init,
    }
    if isinstance(env.action_space, gym.spaces.Box):
        policy_kwargs["log_std_init"] = ppo.log_std_init
    return PPO(
        "MlpPolicy",
        env,
        learning_rate=schedule(ppo.lr, "lr"),
        n_steps=ppo.n_steps,
        batch_size=ppo.batch_size,
        n_epochs=ppo.n_epochs,
        gamma=ppo.gamma,
        gae_lambda=ppo.gae_lambda,
        clip_range=schedule(ppo.clip_range, "clip_range"),
        ent_coef=ppo.ent_coef,
        vf_coef=ppo.vf_coef,
        max_grad_norm=ppo.max_grad_norm,
        use_sde=ppo.use_sde,
        sde_sample_freq=ppo.sde_sample_freq,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
        verbose=0,
    )


class DeterministicEvaluator:
    """``episodes`` episodes of gymnasium's env from fixed seeds, stepped in lock-step with one batched
    ``model.predict(deterministic=True)`` per step; observations pass through the training
    ``VecNormalize`` statistics when there are some. Returns are the env's own (unnormalized)."""

    def __init__(self, env_id: str, episodes: int, seed: int, max_steps: int | None = None, **env_kwargs: Any):
        kwargs: dict[str, Any] = {"max_episode_steps": max_steps} if max_steps is not None else {}
        kwargs.update(env_kwargs)
        self.envs = [gym.make(env_id, **kwargs) for _ in range(episodes)]
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


class MetricsCallback(BaseCallback):
    """Evaluates the policy every ``eval_interval`` training env steps (at the start of the first
    rollout past it, i.e. after the update that consumed those steps) and once at the end; each
    evaluation is a metrics row, written to the run's :class:`~neuroevo.logger.Logger` as soon as it is made."""

    def __init__(self, evaluator: DeterministicEvaluator, eval_interval: int, logger: Logger):
        super().__init__()
        self.evaluator = evaluator
        self.eval_interval = eval_interval
        self.metrics = logger
        self.history: list[dict[str, Any]] = []
        self.episodes = 0
        self.eval_env_steps = 0
        self.best = -math.inf
        self.next_eval = eval_interval
        self._start = 0.0
        self._last = (0, 0.0)  # (env steps, wall time) at the previous row

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        self.episodes += int(np.sum(self.locals["dones"]))
        return True

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.next_eval:
            self._evaluate()

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["env_steps"] != self.num_timesteps:
            self._evaluate()

    def _evaluate(self) -> None:
        returns, steps = self.evaluator(self.model)
        self.eval_env_steps += steps
        mean = float(returns.mean())
        self.best = max(self.best, mean)
        wall = time.perf_counter() - self._start
        row: dict[str, Any] = {
            "generation": self.num_timesteps // rollout_steps_of(self.model),
            "env_steps": self.num_timesteps,
            "episodes": self.episodes,
            "eval/return_mean": mean,
            "eval/return_std": float(returns.std()),
            "eval/best_return": self.best,
            "eval/env_steps": self.eval_env_steps,
            "time/wall": wall,
            "time/env_steps_per_s": (self.num_timesteps - self._last[0]) / max(wall - self._last[1], 1e-9),
        }
        train = {k: float(v) for k, v in self.model.logger.name_to_value.items() if k.startswith("train/")}
        row.update(train)
        self._last = (self.num_timesteps, wall)
        self.next_eval = (self.num_timesteps // self.eval_interval + 1) * self.eval_interval
        self.history.append(row)
        self.metrics.write(row)


def rollout_steps_of(model: BaseAlgorithm) -> int:
    return model.n_envs * cast(PPO, model).n_steps  # the callbacks' model, a PPO


def ppo_budget(config: Config) -> int:
    """The run's env-step budget: ``run.steps``, else the Zoo's ``ppo.steps``."""
    steps = config.run.steps if config.run.steps is not None else config.ppo.steps
    if steps is None:
        raise ValueError(f"{config.env.id}: PPO needs a budget: set run.steps (--steps)")
    if steps < rollout_steps(config.ppo):
        raise ValueError(
            f"budget {steps} env steps is too small for one PPO update on {config.env.id} "
            f"({config.ppo.num_envs} envs x {config.ppo.n_steps} steps): use at least {rollout_steps(config.ppo)}"
        )
    return steps


def warn_if_untuned(config: Config) -> bool:
    """Warn (one line) when the task has no tuned PPO settings; returns whether it has them."""
    if config.ppo.source is None:
        warnings.warn(
            f"{config.env.id} has no PPO hyperparameters from the RL Zoo (its task card has no [ppo] table "
            "with a source): PPO runs with Stable-Baselines3's defaults",
            UserWarning,
            stacklevel=2,
        )
        return False
    return True


def train_ppo(config: Config, out: str | Path | None = None, *, command: str | None = None) -> PPOResult:
    """Train PPO under ``run.steps`` (else ``ppo.steps``) with seed ``run.seed``; log, save, return.

    ``out`` receives ``config.json``, ``command.txt`` (``command``, default this process's command line), the
    metrics in the formats of ``config.log`` (``metrics.jsonl``, ``progress.csv``, ... written as the run goes;
    :mod:`neuroevo.logger`), ``model.zip`` and, with ``ppo.normalize``, ``vecnormalize.pkl``. Raises
    ``ValueError`` if ``out`` already holds a run.
    """
    steps = ppo_budget(config)
    warn_if_untuned(config)
    run_dir = Path(out) if out is not None else None
    if config.log.capture_video is not None:
        warnings.warn("log.capture_video films neuroevo's optimizers, not the PPO baseline: no videos of it",
                      UserWarning, stacklevel=2)
    if run_dir is not None:
        if (run_dir / "metrics.jsonl").exists():
            raise ValueError(f"{run_dir} already holds a run; pick another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        record_command(run_dir, command if command is not None else command_line())
    logger = Logger(run_dir, config.log, config.to_dict())
    threads = torch.get_num_threads()
    if config.ppo.threads is not None:
        torch.set_num_threads(config.ppo.threads)
    evaluator = DeterministicEvaluator(resolve_env_id(config.env.id, config.env.entry_point), config.run.eval_episodes,
                                       config.run.seed, config.env.max_steps, **config.env.kwargs)
    try:
        model = build_model(config, config.run.seed)
        interval = max(rollout_steps(config.ppo), steps // config.ppo.eval_points)
        callback = MetricsCallback(evaluator, interval, logger)
        model.learn(total_timesteps=steps, callback=callback)
    finally:
        evaluator.close()
        logger.close()
        torch.set_num_threads(threads)
    if run_dir is not None:
        model.save(run_dir / "model.zip")
        vec_normalize = model.get_vec_normalize_env()
        if vec_normalize is not None:
            vec_normalize.save(str(run_dir / "vecnormalize.pkl"))
    last = callback.history[-1]
    return PPOResult(
        run_dir=run_dir,
        generations=int(last["generation"]),
        env_steps=int(last["env_steps"]),
        wall_time=float(last["time/wall"]),
        best_eval_return=callback.best,
        final_eval_return=float(last["eval/return_mean"]),
        history=callback.history,
    )
