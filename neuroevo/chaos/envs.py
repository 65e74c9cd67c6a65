"""Misbehaving gymnasium envs for the chaos suite's bad-dynamics attack (registered on import; from the command
line as ``--env neuroevo.chaos.envs:ChaosNaNObs-v0``, which gymnasium imports).

Each is a point on a line pushed left or right (obs [x, v], ``Discrete(2)``, reward 1 per step, 50 steps) whose
episodes go bad in one way when their reset seed is a multiple of :attr:`ChaosEnv.every` (a fixed share of the
population's episodes, the same members for one seed): NaN observations, NaN or infinite rewards; or the env
raises mid-episode once the process has stepped it :attr:`ChaosEnv.raise_after` times.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ChaosEnv(gym.Env):
    fault = "none"
    every = 3
    #: ChaosRaise: raise once this many steps were taken in this process (a class attribute: set it to None to fix)
    raise_after: int | None = 2_000
    steps_taken = 0
    metadata: dict = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.state = np.zeros(2)
        self.bad = False
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.bad = seed is not None and seed % self.every == 0
        self.state = self.np_random.uniform(-0.1, 0.1, 2)
        self.t = 0
        return self.state.astype(np.float32), {}

    def step(self, action):
        ChaosEnv.steps_taken += 1
        if self.fault == "raise" and self.raise_after is not None and ChaosEnv.steps_taken > self.raise_after:
            raise RuntimeError("ChaosRaise: the simulator crashed mid-episode")
        self.t += 1
        self.state = self.state + np.array([self.state[1], 0.05 if action == 1 else -0.05])
        obs, reward = self.state.astype(np.float32), 1.0 - abs(float(self.state[0]))
        if self.bad and self.t >= 5:
            if self.fault == "nan_obs":
                obs = np.full(2, np.nan, np.float32)
            elif self.fault == "nan_reward":
                reward = float("nan")
            elif self.fault == "inf_reward":
                reward = float("inf")
        return obs, reward, bool(abs(self.state[0]) > 3.0), False, {}


def _env_class(name: str, fault: str) -> type[ChaosEnv]:
    return type(name, (ChaosEnv,), {"fault": fault})


ChaosNaNObs = _env_class("ChaosNaNObs", "nan_obs")
ChaosNaNReward = _env_class("ChaosNaNReward", "nan_reward")
ChaosInfReward = _env_class("ChaosInfReward", "inf_reward")
ChaosRaise = _env_class("ChaosRaise", "raise")

#: gymnasium id -> class, registered on import
ENVS = {"ChaosNaNObs-v0": ChaosNaNObs, "ChaosNaNReward-v0": ChaosNaNReward, "ChaosInfReward-v0": ChaosInfReward,
        "ChaosRaise-v0": ChaosRaise}

for _id, _cls in ENVS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=f"{__name__}:{_cls.__name__}", max_episode_steps=50,
                     disable_env_checker=True)
