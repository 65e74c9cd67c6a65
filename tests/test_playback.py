"""Evaluating saved policies: which action spaces count as the same."""

import gymnasium as gym
import numpy as np

from neuroevo.playback import _same_action_space


def test_action_spaces_match_by_kind_size_and_bounds_not_dtype():
    box32 = gym.spaces.Box(-2.0, 2.0, (1,), dtype=np.float32)
    assert _same_action_space(box32, gym.spaces.Box(-2.0, 2.0, (1,), dtype=np.float64))
    assert not _same_action_space(box32, gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32))
    assert not _same_action_space(box32, gym.spaces.Box(-2.0, 2.0, (2,), dtype=np.float32))
    assert _same_action_space(gym.spaces.Discrete(3), gym.spaces.Discrete(3))
    assert not _same_action_space(gym.spaces.Discrete(3), gym.spaces.Discrete(3, start=1))
    assert not _same_action_space(gym.spaces.Discrete(2), box32)
