"""A point on a line, pushed by the action; reward 1 - |x|; the episode ends when |x| > 1."""

import gymnasium as gym
import numpy as np


class Drift(gym.Env):
    """obs [size]: the position x, repeated ``size`` times (a constructor argument, so that a run that forgot
    it would see observations of another size); action [1] in [-1, 1] moves x by ``gain`` times it."""

    def __init__(self, size: int = 1, gain: float = 0.5):
        self.size, self.gain = int(size), float(gain)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.size,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _obs(self):
        return np.full(self.size, self.x, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.5, 0.5))
        return self._obs(), {}

    def step(self, action):
        self.x += self.gain * float(np.clip(action, -1.0, 1.0)[0])
        return self._obs(), 1.0 - abs(self.x), abs(self.x) > 1.0, False, {}
