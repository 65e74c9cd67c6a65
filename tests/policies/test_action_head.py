"""Action head: Discrete argmax with start offset, Box clamp and reshape, check_fits messages."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from neuroevo.policies import MLP, Linear, check_fits, output_dim, to_env_action


def test_output_dim():
    assert output_dim(gym.spaces.Discrete(3)) == 3
    assert output_dim(gym.spaces.Box(-1, 1, (2, 3))) == 6
    with pytest.raises(ValueError, match="unsupported action space MultiBinary"):
        output_dim(gym.spaces.MultiBinary(4))


def test_discrete_argmax_with_start():
    raw = torch.tensor([[[0.1, 2.0, -1.0], [5.0, 0.0, 0.0]]])  # [P=1, E=2, 3]
    actions = to_env_action(raw, gym.spaces.Discrete(3, start=-1))
    assert actions.dtype == torch.int64 and actions.tolist() == [[0, -1]]


def test_box_clamp_and_reshape():
    space = gym.spaces.Box(np.array([[-1.0, 0.0]], np.float32), np.array([[1.0, 0.5]], np.float32))
    raw = torch.tensor([[-3.0, 0.25], [0.5, 9.0]])  # [N=2, 2]
    actions = to_env_action(raw, space)
    assert actions.shape == (2, 1, 2) and actions.dtype == torch.float32
    assert actions.tolist() == [[[-1.0, 0.25]], [[0.5, 0.5]]]
    with pytest.raises(ValueError, match=r"raw outputs of shape \(2, 3\) should end in 2"):
        to_env_action(torch.zeros(2, 3), space)


def test_check_fits_messages():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (4,))
    check_fits(Linear(4, 2), gym.spaces.Discrete(2), obs_space)
    msg = "policy outputs 3 values but CartPole-v1's action space Discrete(2) needs 2"
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        check_fits(MLP(4, 3), gym.spaces.Discrete(2), obs_space, name="CartPole-v1")
    with pytest.raises(ValueError, match="policy takes 5 inputs but the observation space Box") as err:
        check_fits(Linear(5, 2), gym.spaces.Discrete(2), obs_space)
    assert "\n" not in str(err.value)
