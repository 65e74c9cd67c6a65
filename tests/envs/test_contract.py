"""The batched-env contract (neuroevo/envs/base.py), held by ``check_env`` over every backend and task, and
``check_env`` itself on a small user env written the way a user would, right and wrong.

The warp backend runs on warp's CPU device, where an env step takes ~80 ms whatever the number of worlds
(and the kernels compile once per process, about a minute with no cache in ``~/.cache/warp``), so a
check_env there takes 2-4 s: the test runs a representative subset rather than all 9 tasks, the warp
engine (reset, step, masks, the holding of finished worlds) being shared by every task and the task
code being the mujoco backend's, checked on all 9. Hopper-v5 (planar, terminates), Ant-v5 (spatial,
contact forces in the observation) and InvertedPendulum-v5 (classic, no contacts) cover the three task
families. Warp tests skip where the ``neuroevo[warp]`` extra is missing, as in test_warp.py.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from neuroevo.envs import (
    MUJOCO_ENVS,
    TORCH_ENVS,
    EnvContractError,
    EnvContractWarning,
    EpisodeState,
    VectorEnv,
    check_env,
    make_env,
)
from neuroevo.envs.base import as_mask
from neuroevo.seeding import hash_uniform

NUM_ENVS = 4
#: short episodes so that truncation is reached within a few steps (the warp backend's steps are slow)
MAX_EPISODE_STEPS = {"torch": 16, "gymnasium": 16, "mujoco": 16, "warp": 3}
WARP_TASKS = ("Hopper-v5", "Ant-v5", "InvertedPendulum-v5")
GYMNASIUM_TASKS = ("CartPole-v1", "Pendulum-v1", "Hopper-v5")

CASES = (
    [("torch", env_id) for env_id in TORCH_ENVS]
    + [("mujoco", env_id) for env_id in MUJOCO_ENVS]
    + [("warp", env_id) for env_id in WARP_TASKS]
    + [("gymnasium", env_id) for env_id in GYMNASIUM_TASKS]
)


@pytest.fixture(scope="module")
def warp():
    return pytest.importorskip("mujoco_warp")


@pytest.mark.parametrize(("backend", "env_id"), CASES, ids=[f"{b}-{e}" for b, e in CASES])
def test_every_backend_keeps_the_contract(backend, env_id, request):
    if backend == "warp":
        request.getfixturevalue("warp")
    env = make_env(env_id, NUM_ENVS, "cpu", backend=backend, max_episode_steps=MAX_EPISODE_STEPS[backend])
    try:
        assert env.max_episode_steps == MAX_EPISODE_STEPS[backend]
        with warnings.catch_warnings():
            warnings.simplefilter("error", EnvContractWarning)  # every check ran: an episode ended
            check_env(env, seed=3)
    finally:
        env.close()


# -- a user's env, the way the contract asks for it -------------------------------------------------------------
class Drift(VectorEnv):
    """A point on a line, pushed by the action: obs [N, 1] its position x, action [N, 1] in [-1, 1] moves it by
    half that, reward 1 - |x|; the episode terminates when |x| > 1 and truncates after ``max_episode_steps``.

    What makes it keep the contract: :class:`EpisodeState` does the episode bookkeeping (sticky finished
    episodes, masks, the time limit), start states come from (seed, reset count) through ``hash_uniform``,
    and ``check_actions`` refuses malformed actions.
    """

    def __init__(self, num_envs: int, max_episode_steps: int | None = 8, device="cpu"):
        self.spec_id = "Drift"
        self.num_envs, self.device, self.max_episode_steps = num_envs, torch.device(device), max_episode_steps
        self._init_spaces(gym.spaces.Box(-np.inf, np.inf, (1,), np.float32), gym.spaces.Box(-1, 1, (1,), np.float32))
        self._init_seeds(self.device)

    def reset(self, *, seed=None, options=None):
        mask, _ = self._reset_bookkeeping(seed, options)
        if self.episodes is None:
            self.episodes = EpisodeState(self.num_envs, 1, self.max_episode_steps, self.device)
        start = hash_uniform(self._seeds, self._resets, 1) - 0.5  # [N, 1] in [-0.5, 0.5)
        return self.episodes.reset(as_mask(mask, self.num_envs, self.device), start), {}

    def step(self, actions):
        if self.episodes is None:
            raise RuntimeError("Drift: call reset() before step()")
        actions = torch.as_tensor(actions, device=self.device)
        self.check_actions(actions)
        x = self.episodes.obs + 0.5 * actions.clamp(-1, 1)  # EpisodeState holds the finished envs' x
        obs, reward, terminated, truncated = self.episodes.step(x, 1 - x[:, 0].abs(), x[:, 0].abs() > 1)
        return obs, reward, terminated, truncated, {}


class Autoresets(Drift):
    """Starts a new episode as soon as one ends, as gymnasium's vector envs do by default."""

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        done = terminated | truncated
        if bool(done.any()):
            obs, _ = self.reset(options={"reset_mask": done})
        return obs, reward, terminated, truncated, info


class RewardsAfterTheEnd(Drift):
    """Keeps paying 1 - |x| to finished episodes."""

    def step(self, actions):
        obs, _, terminated, truncated, info = super().step(actions)
        return obs, 1 - obs[:, 0].abs(), terminated, truncated, info


class ResetsEveryEnv(Drift):
    """Ignores the reset mask."""

    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)


class LeaksNaN(Drift):
    """Adds a batch statistic (here 0 x the mean reward) to every reward, so one env's NaN reaches all."""

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs, reward + 0 * reward.mean(), terminated, truncated, info


def test_check_env_passes_a_user_env_that_keeps_the_contract():
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnvContractWarning)
        check_env(Drift(NUM_ENVS))


@pytest.mark.parametrize(
    ("env_class", "message"),
    [
        (Autoresets, r"^Drift \(Autoresets\): env \d finished at step \d+, but step \d+ returned a new observation"),
        (RewardsAfterTheEnd, r"^Drift \(RewardsAfterTheEnd\): env \d finished at step \d+, but step \d+ returned "
                             r"reward .*; a finished episode returns 0$"),
        (ResetsEveryEnv, r"^Drift \(ResetsEveryEnv\): reset\(options=\{'reset_mask': \.\.\.\}\) changed the "
                         r"observation of env [\d, ]+, which was not in the mask$"),
        (LeaksNaN, r"^Drift \(LeaksNaN\): step 1 with a NaN entry in env 0's action .*: the reward of env 1, 2, 3 "
                   r"differs$"),
    ],
)
def test_check_env_names_what_a_broken_user_env_gets_wrong(env_class, message):
    with pytest.raises(EnvContractError, match=message) as error:
        check_env(env_class(NUM_ENVS))
    assert isinstance(error.value, AssertionError) and "\n" not in str(error.value)


def test_check_env_wants_a_fresh_env_and_says_when_no_episode_ended():
    env = Drift(NUM_ENVS, max_episode_steps=None)
    env.reset()
    with pytest.raises(EnvContractError, match=r"step\(\) before any reset\(\) returned; it must raise RuntimeError"):
        check_env(env)
    with pytest.warns(EnvContractWarning, match="no episode ended within 1 steps"):
        check_env(env, steps=1, fresh=False)
