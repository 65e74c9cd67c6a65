"""SAC and TD3 from Stable-Baselines3 on gymnasium's env, with the task card's ``[sac]`` / ``[td3]`` settings.

Both keep a replay buffer (``buffer_size``), act uniformly at random for ``learning_starts`` env steps, then
take ``gradient_steps`` gradient steps every ``train_freq`` env steps per env: one such round is an update
("generation") in the metrics. The run itself (metrics, saves with the replay buffer, resume) is
:mod:`neuroevo.baselines.sb3`'s. Continuous actions only (SB3's SAC and TD3 take ``Box`` action spaces).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecEnv

from neuroevo.baselines.config import OffPolicyConfig, SACConfig, TD3Config
from neuroevo.baselines.ppo import schedule
from neuroevo.baselines.sb3 import ACTIVATIONS, Baseline

NOISE_TYPES = ("normal", "ornstein-uhlenbeck")


def _check_common(cfg: OffPolicyConfig, algo: str) -> None:
    for name in ("buffer_size", "batch_size", "train_freq"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{algo}.{name} must be positive, got {getattr(cfg, name)}")
    if cfg.learning_starts < 0:
        raise ValueError(f"{algo}.learning_starts must be 0 or more, got {cfg.learning_starts}")
    if cfg.gradient_steps == 0 or cfg.gradient_steps < -1:
        raise ValueError(f"{algo}.gradient_steps must be positive or -1, got {cfg.gradient_steps}")
    if not 0 < cfg.tau <= 1:
        raise ValueError(f"{algo}.tau must be in (0, 1], got {cfg.tau}")
    schedule(cfg.lr, "lr", algo)  # type: ignore[attr-defined]  # SACConfig and TD3Config have it


def check_sac_config(sac: SACConfig) -> None:
    """Raise a one-line ``ValueError`` for settings SB3's SAC cannot run."""
    _check_common(sac, "sac")
    ent = sac.ent_coef
    if isinstance(ent, str):
        ok = ent == "auto" or (ent.startswith("auto_") and _is_number(ent[5:]))
    else:
        ok = ent > 0
    if not ok:
        raise ValueError(f"sac.ent_coef must be a positive number, 'auto' or 'auto_<number>', got {ent!r}")
    if sac.target_update_interval <= 0:
        raise ValueError(f"sac.target_update_interval must be positive, got {sac.target_update_interval}")


def check_td3_config(td3: TD3Config) -> None:
    """Raise a one-line ``ValueError`` for settings SB3's TD3 cannot run."""
    _check_common(td3, "td3")
    if td3.noise_type is not None and td3.noise_type not in NOISE_TYPES:
        raise ValueError(f"td3.noise_type must be one of {', '.join(NOISE_TYPES)} or unset, got {td3.noise_type!r}")
    if td3.noise_std < 0:
        raise ValueError(f"td3.noise_std must be 0 or more, got {td3.noise_std}")
    if td3.policy_delay <= 0:
        raise ValueError(f"td3.policy_delay must be positive, got {td3.policy_delay}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def round_steps(cfg: OffPolicyConfig) -> int:
    """Env steps of one round of gradient steps: ``num_envs * train_freq``."""
    return cfg.num_envs * cfg.train_freq


def _common_kwargs(cfg: OffPolicyConfig, algo: str, seed: int) -> dict[str, Any]:
    return {
        "learning_rate": schedule(cfg.lr, "lr", algo),  # type: ignore[attr-defined]
        "buffer_size": cfg.buffer_size,
        "learning_starts": cfg.learning_starts,
        "batch_size": cfg.batch_size,
        "tau": cfg.tau,
        "gamma": cfg.gamma,
        "train_freq": cfg.train_freq,
        "gradient_steps": cfg.gradient_steps,
        "policy_kwargs": {"net_arch": list(cfg.hidden), "activation_fn": ACTIVATIONS[cfg.activation]},  # type: ignore[attr-defined]
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }


def _require_box(env: VecEnv, algo: str) -> None:
    import gymnasium as gym

    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"{algo} needs continuous (Box) actions; this env's are {env.action_space}")


def build_sac(sac: SACConfig, env: VecEnv, seed: int) -> SAC:
    """SB3's SAC on the training envs ``env``, with ``sac``'s settings."""
    _require_box(env, "sac")
    return SAC("MlpPolicy", env, ent_coef=sac.ent_coef, target_update_interval=sac.target_update_interval,
               use_sde=sac.use_sde, **_common_kwargs(sac, "sac", seed))


def build_td3(td3: TD3Config, env: VecEnv, seed: int) -> TD3:
    """SB3's TD3 on the training envs ``env``, with ``td3``'s settings (SB3 adds the noise to the action
    rescaled to [-1, 1], so ``noise_std`` is in units of the action range's half-width, as in the Zoo)."""
    _require_box(env, "td3")
    noise = None
    if td3.noise_type is not None:
        dims = env.action_space.shape[-1]  # type: ignore[index]
        sigma = td3.noise_std * np.ones(dims)
        cls = NormalActionNoise if td3.noise_type == "normal" else OrnsteinUhlenbeckActionNoise
        noise = cls(mean=np.zeros(dims), sigma=sigma)
    return TD3("MlpPolicy", env, action_noise=noise, policy_delay=td3.policy_delay,
               target_policy_noise=td3.target_policy_noise, target_noise_clip=td3.target_noise_clip,
               **_common_kwargs(td3, "td3", seed))


OFF_POLICY_BASELINES = {
    "sac": Baseline("SAC", SAC, check_sac_config, build_sac, round_steps),
    "td3": Baseline("TD3", TD3, check_td3_config, build_td3, round_steps),
}
