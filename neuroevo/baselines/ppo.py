"""PPO from Stable-Baselines3 on gymnasium's env, with the task card's ``[ppo]`` settings (the RL Zoo's).

Settings follow the Zoo: ``"lin_X"`` schedules decay X linearly to 0 over the run, ``normalize`` wraps the
training envs in ``VecNormalize`` (observations and rewards, discounted with ``gamma``), the training envs are
a ``DummyVecEnv`` of ``num_envs`` Monitor-wrapped envs. One update ("generation") is one rollout of
``num_envs * n_steps`` env steps. The run itself (metrics, saves, resume) is :mod:`neuroevo.baselines.sb3`'s.
"""

from __future__ import annotations

import functools
from pathlib import Path

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from neuroevo.baselines import sb3
from neuroevo.baselines.config import PPOConfig
from neuroevo.baselines.sb3 import ACTIVATIONS, Baseline, BaselineResult
from neuroevo.config import Config

#: kept under its old name: what a finished PPO run gives back
PPOResult = BaselineResult

#: SB3's policy classes a card's ``ppo.policy`` may name
POLICIES = ("MlpPolicy", "CnnPolicy")


def _linear(initial: float, progress_remaining: float) -> float:
    return progress_remaining * initial


def schedule(value: float | str, name: str, algo: str = "ppo"):
    """A Zoo hyperparameter value as SB3 takes it: a number, or ``"lin_X"`` -> X * progress_remaining."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return functools.partial(_linear, float(value[4:]))
        except ValueError:
            pass
    raise ValueError(f"{algo}.{name} must be a number or 'lin_<number>' (the RL Zoo's linear schedule), got {value!r}")


def check_ppo_config(ppo: PPOConfig) -> None:
    """Raise a one-line ``ValueError`` for PPO's own settings that SB3 cannot run (the ones every baseline has:
    :func:`neuroevo.baselines.sb3.check_settings`)."""
    for name in ("n_steps", "batch_size", "n_epochs"):
        if getattr(ppo, name) <= 0:
            raise ValueError(f"ppo.{name} must be positive, got {getattr(ppo, name)}")
    schedule(ppo.lr, "lr")
    schedule(ppo.clip_range, "clip_range")
    if ppo.policy not in POLICIES:
        raise ValueError(f"ppo.policy must be one of {', '.join(POLICIES)}, got {ppo.policy!r}")
    if ppo.env_wrapper not in (None, "atari"):
        raise ValueError(f"ppo.env_wrapper must be 'atari' or unset, got {ppo.env_wrapper!r}")
    if ppo.frame_stack < 1:
        raise ValueError(f"ppo.frame_stack must be >= 1, got {ppo.frame_stack}")


def rollout_steps(ppo: PPOConfig) -> int:
    """Env steps of one PPO update: ``num_envs * n_steps``."""
    return ppo.num_envs * ppo.n_steps


def build_ppo(ppo: PPOConfig, env: VecEnv, seed: int) -> PPO:
    """SB3's PPO on the training envs ``env``, with ``ppo``'s settings."""
    policy_kwargs: dict = {"ortho_init": ppo.ortho_init}
    if ppo.policy == "MlpPolicy":  # CnnPolicy: SB3's Nature CNN and linear heads, as the Zoo runs it
        policy_kwargs.update(net_arch={"pi": list(ppo.hidden), "vf": list(ppo.hidden)},
                             activation_fn=ACTIVATIONS[ppo.activation])
    if isinstance(env.action_space, gym.spaces.Box):
        policy_kwargs["log_std_init"] = ppo.log_std_init
    return PPO(
        ppo.policy,
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


PPO_BASELINE = Baseline("PPO", PPO, check_ppo_config, build_ppo, rollout_steps)


def build_model(config: Config, seed: int) -> PPO:
    """SB3's PPO on ``num_envs`` copies of gymnasium's ``config.env.id``, with ``config.ppo``'s settings."""
    sb3.check_settings(config, "ppo")
    return build_ppo(config.ppo, sb3.make_training_envs(config, "ppo", seed), seed)


def ppo_budget(config: Config) -> int:
    """The run's env-step budget: ``run.steps``, else the Zoo's ``ppo.steps``."""
    return sb3.budget(config, "ppo")


def warn_if_untuned(config: Config) -> bool:
    """Warn (one line) when the task has no tuned PPO settings; returns whether it has them."""
    return sb3.warn_if_untuned(config, "ppo")


def train_ppo(config: Config, out: str | Path | None = None, *, command: str | None = None) -> BaselineResult:
    """Train PPO under ``run.steps`` (else ``ppo.steps``) with seed ``run.seed``; log, save, return
    (:func:`neuroevo.baselines.sb3.train_baseline`)."""
    return sb3.train_baseline("ppo", config, out, command=command)
