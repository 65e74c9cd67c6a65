"""EnvPool's MuJoCo -v5 tasks against gymnasium's, measured: the step-by-step parity check that neuroevo's mujoco
backend passes (obs, reward and flags within :data:`ATOL` at every step of whole episodes) and the returns of random
actions in distribution. ``scripts/envpool_parity.py`` runs it over every task; ``tests/envs/test_envpool.py`` pins
its figures (docs/guides/envpool.md).

EnvPool cannot be set to a given state and draws its start states from its own generator, so both envs start
from the model's initial state (``reset_noise_scale=0``) and take the same seeded random actions. For scale,
:func:`stepwise` also runs gymnasium against itself with the start velocities nudged: where that nudge breaks the
tolerance too, the task is chaotic under random actions and any round-off difference grows.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, cast

import gymnasium as gym
import numpy as np

ATOL = 1e-7  # the mujoco backend's parity tolerance (tests/envs/mujoco_parity.py)

# the cards' MuJoCo tasks; Reacher-v5 is left out: its goal is drawn at every reset whatever the noise scale,
# from each library's own generator, so no two episodes can start alike
TASKS = ("Swimmer-v5", "Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5",
         "InvertedPendulum-v5", "InvertedDoublePendulum-v5")


def make_envpool(task: str, num_envs: int = 1, seed: int = 0, **kwargs: Any) -> Any:
    import envpool

    return envpool.make_gymnasium(task, num_envs=num_envs, seed=seed, **kwargs)


def _quiet_gym(task: str, **kwargs: Any) -> Any:
    with warnings.catch_warnings():  # MuJoCo 4 warns about Humanoid's deprecated 'settotalmass'
        warnings.simplefilter("ignore")
        return gym.make(task, **kwargs)


def stepwise(task: str, seed: int, steps: int = 1000, nudge: float | None = None) -> dict:
    """One episode from the noiseless start under seeded uniform random actions: EnvPool against gymnasium
    (``nudge`` None) or gymnasium against itself with the start qvel + ``nudge``. The largest |difference| of
    obs and reward per step; the first step where it exceeds :data:`ATOL` or the flags differ (None: never);
    the step and flags at which each episode ended; both returns."""
    ref = _quiet_gym(task, reset_noise_scale=0.0)
    ref.reset(seed=seed)
    if nudge is None:
        other = make_envpool(task, reset_noise_scale=0.0)
        other.reset()
    else:
        other = _quiet_gym(task, reset_noise_scale=0.0)
        other.reset(seed=seed)
        data = other.unwrapped.data
        other.unwrapped.set_state(data.qpos.copy(), data.qvel.copy() + nudge)
    rng = np.random.default_rng(seed)
    box = cast(gym.spaces.Box, ref.action_space)
    diffs: list[float] = []
    first: int | None = None
    returns = [0.0, 0.0]
    ends: list[tuple[int, bool, bool] | None] = [None, None]
    for t in range(steps):
        action = rng.uniform(box.low, box.high).astype(np.float32)
        obs, reward, term, trunc, _ = ref.step(action)
        if nudge is None:
            o_obs, o_reward, o_term, o_trunc = (x[0] for x in other.step(action[None].astype(np.float64))[:4])
        else:
            o_obs, o_reward, o_term, o_trunc, _ = other.step(action)
        diffs.append(float(max(np.abs(o_obs - obs).max(), abs(o_reward - reward))))
        returns[0] += float(reward)
        returns[1] += float(o_reward)
        if first is None and (diffs[-1] > ATOL or (term, trunc) != (bool(o_term), bool(o_trunc))):
            first = t
        if term or trunc or o_term or o_trunc:
            ends = [(t, bool(term), bool(trunc)) if term or trunc else None,
                    (t, bool(o_term), bool(o_trunc)) if o_term or o_trunc else None]
            break
    ref.close()
    other.close()
    return {"seed": seed, "first_step_over_tol": first, "max_diff_first_10_steps": max(diffs[:10]),
            "max_diff": max(diffs), "steps": len(diffs), "end_gymnasium": ends[0], "end_other": ends[1],
            "return_gymnasium": returns[0], "return_other": returns[1]}


def random_returns(task: str, episodes: int, seed: int = 0) -> dict:
    """Mean and standard error of the return and length of ``episodes`` episodes of uniform random actions from
    each library's default (noisy) start states, EnvPool's and gymnasium's."""
    rng = np.random.default_rng(seed)
    ref = _quiet_gym(task)
    pool = make_envpool(task, seed=seed)
    box = cast(gym.spaces.Box, ref.action_space)
    out = {}
    for name in ("gymnasium", "envpool"):
        rets, lens = [], []
        for k in range(episodes):
            if name == "gymnasium":
                ref.reset(seed=seed + k)
            else:
                pool.reset()
            total, t, done = 0.0, 0, False
            while not done:
                action = rng.uniform(box.low, box.high)
                if name == "gymnasium":
                    _, r, term, trunc, _ = ref.step(action.astype(np.float32))
                else:
                    _, r, term, trunc = (x[0] for x in pool.step(action[None])[:4])
                total, t, done = total + float(r), t + 1, bool(term or trunc)
            rets.append(total)
            lens.append(t)
        out[name] = {"return_mean": float(np.mean(rets)), "return_se": float(np.std(rets) / math.sqrt(episodes)),
                     "length_mean": float(np.mean(lens))}
    ref.close()
    pool.close()
    return out
