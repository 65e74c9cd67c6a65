"""Atari 2600 games from pixels: ale-py's C++ vector env behind neuroevo's batched-env contract.

``make_env("ALE/Frostbite-v5", N)`` (any ``ALE/<Game>-v5`` id) runs N emulators on ale-py's thread pool
(``ale_py.vector_env.AtariVectorEnv``, ale-py >= 0.11, ROMs inside the wheel), with the preprocessing of the
DQN and Deep Neuroevolution papers done in C++: no-op starts, frame skip with a max over the last two frames,
grayscale, resize to 84x84, a stack of the last frames. Observations are ``uint8`` pixels, flattened to
[N, stack * 84 * 84] like every other backend's [N, obs_dim] (``single_observation_space`` keeps the image shape
(stack, 84, 84), which conv policies read), and stay uint8 until a policy converts them.

The contract (:mod:`neuroevo.envs.base`): ale-py has no mode without autoreset, so it runs in its
``NEXT_STEP`` mode and :class:`~neuroevo.envs.base.EpisodeState` masks its outputs: a finished game returns its
last observation, reward 0 and its flags; the game ale-py restarts on the next step is never returned nor
counted, and a masked ``reset`` seeds each restarted game (measured: a game reset right after it ended replays
exactly the game a fresh env starts from that seed).

ale-py's own defaults differ from the papers' in ways that change fitness; every one is an argument here, with
the papers' value as default (Mnih et al. 2015, "Human-level control through deep reinforcement learning";
Such et al. 2017, "Deep Neuroevolution", arXiv 1712.06567, which used the same preprocessing):

- ``noop_max=30``: up to 30 random no-ops at the start of each game, drawn from the game's seed.
- ``frame_skip=4``: each action repeats for 4 frames; the observation is the max of the last two (the
  Atari flickers).
- ``frame_stack=4``, ``screen_size=84``, grayscale: what the Nature network reads.
- ``sticky_actions=0.0``: the papers had none; gymnasium's ``-v5`` ids default to 0.25 (Machado et al.
  2018). A task card sets it.
- ``clip_rewards=False``: fitness is the game score (ale-py clips to [-1, 1] by default, as DQN trained).
- ``fire_reset=False``: no FIRE pressed at reset (ale-py presses it by default; the papers did not).
- ``max_episode_steps``: agent steps (each ``frame_skip`` frames); None: 27,000 (108,000 frames, ale-py's and
  gymnasium's cap). The Deep Neuroevolution GA capped games at 5,000 steps; a task card sets that.

Reference: the same frames come out of gymnasium's ``ALE/...`` env with ``frameskip=1``,
``repeat_action_probability=0``, ``AtariPreprocessing(frame_skip=4, noop_max=0)`` and
``FrameStackObservation(4, padding_type="zero")`` (ale-py pads a new game's stack with blank frames): with
no-ops off and no sticky actions one action sequence gives identical observations and rewards on both stacks
(tests/envs/test_atari.py). With no-ops on, the two draw their no-op counts from different streams, so single
games differ while the score distributions agree.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.base import Device, EpisodeState, Seed, VectorEnv, as_mask
from neuroevo.seeding import derive_seed

#: ale-py's and gymnasium's cap: 108,000 frames
DEFAULT_MAX_FRAMES = 108_000
#: ale-py seeds are 32-bit signed ints
_ALE_SEED_LIMIT = 2**31


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The preprocessing settings the atari backend and its gymnasium reference share, with the papers' values as
    defaults (the module's docstring says why each): ``make_env`` keyword arguments, a card's ``[env.kwargs]``."""

    noop_max: int = 30
    frame_skip: int = 4
    frame_stack: int = 4
    screen_size: int = 84
    sticky_actions: float = 0.0
    clip_rewards: bool = False
    fire_reset: bool = False
    full_action_space: bool = False

    def check(self, env_id: str) -> Preprocessing:
        """These settings, after a one-line ``ValueError`` naming ``env_id`` and the bad value, if any is."""
        for name, low in (("noop_max", 0), ("frame_skip", 1), ("frame_stack", 1), ("screen_size", 8)):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{env_id}: {name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= self.sticky_actions <= 1.0:
            raise ValueError(f"{env_id}: sticky_actions must be a probability in [0, 1], got {self.sticky_actions}")
        return self

    @property
    def gym_make_kwargs(self) -> dict[str, Any]:
        """``gym.make`` arguments of gymnasium's ``ALE/...`` env under wrappers that do the frame skip themselves
        (gymnasium's ``AtariPreprocessing``, SB3's ``AtariWrapper``): no frame skip of its own, these sticky
        actions and action set."""
        return {"frameskip": 1, "repeat_action_probability": float(self.sticky_actions),
                "full_action_space": self.full_action_space}

    @property
    def default_max_steps(self) -> int:
        """The time limit without one given: ale-py's and gymnasium's 108,000 frames, in agent steps."""
        return DEFAULT_MAX_FRAMES // int(self.frame_skip)


#: the names of the :class:`Preprocessing` settings (what the gymnasium backend takes out of an ALE id's kwargs)
ATARI_SETTINGS = tuple(f.name for f in dataclasses.fields(Preprocessing))


def take_preprocessing(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The :class:`Preprocessing` settings among ``kwargs`` (env arguments), removed from it."""
    return {name: kwargs.pop(name) for name in ATARI_SETTINGS if name in kwargs}


def ale_available() -> bool:
    return importlib.util.find_spec("ale_py") is not None


def is_atari(env_id: str) -> bool:
    """True for gymnasium's ``ALE/...`` ids (the atari backend's)."""
    return env_id.startswith("ALE/")


def _require_ale():
    try:
        import ale_py
    except ImportError:
        raise ImportError("the atari backend needs ale-py: pip install 'neuroevo[atari]'") from None
    gym.register_envs(ale_py)
    return ale_py


def game_of(env_id: str) -> str:
    """The ROM name of an ``ALE/<Game>-v5`` id (e.g. ``"frostbite"``); a one-line ``ValueError`` for an id
    gymnasium does not know."""
    _require_ale()
    if env_id not in gym.registry or not is_atari(env_id):
        raise ValueError(f"unknown Atari env id {env_id!r}; use an ALE id such as 'ALE/Pong-v5'")
    return str(gym.spec(env_id).kwargs["game"])


def ale_seed(seed: int) -> int:
    """``seed`` as the 32-bit seed ale-py takes: itself when it fits (so seeded games match gymnasium's),
    else a hash of it."""
    if 0 <= seed < _ALE_SEED_LIMIT:
        return seed
    return derive_seed(seed, 0) % _ALE_SEED_LIMIT


class AtariVectorEnv(VectorEnv):
    """N Atari games on ale-py's C++ vector env, keeping neuroevo's contract (see the module's docstring).

    Args:
        env_id: an ``ALE/<Game>-v5`` id.
        num_envs: N.
        device: where the returned tensors live (the emulators run on the CPU).
        num_threads: emulator threads (None: the cores available).
        max_episode_steps: the time limit in agent steps (None: 108,000 frames / ``frame_skip``).
        settings: the :class:`Preprocessing` (noop_max, frame_skip, frame_stack, screen_size, sticky_actions,
            clip_rewards, fire_reset, full_action_space: all 18 actions instead of the game's minimal set).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        device: Device = None,
        num_threads: int | None = None,
        max_episode_steps: int | None = None,
        **settings: Any,
    ):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        pre = Preprocessing(**settings).check(env_id)
        from ale_py.vector_env import AtariVectorEnv as ALEVectorEnv

        game = game_of(env_id)
        self.spec_id = env_id
        self.num_envs = int(num_envs)
        self.device = torch.device(device if device is not None else "cpu")
        self.frame_skip = int(pre.frame_skip)
        if max_episode_steps is None:
            max_episode_steps = pre.default_max_steps
        self.max_episode_steps = int(max_episode_steps)
        threads = num_threads if num_threads is not None else len(_cores())
        self.physics_threads = int(threads)
        self.ale = ALEVectorEnv(
            game,
            self.num_envs,
            num_threads=int(threads),
            # ale-py's own cap stays above ours (no-ops included), so episodes end by our time limit
            max_num_frames_per_episode=(self.max_episode_steps + 1) * self.frame_skip + pre.noop_max + 1,
            repeat_action_probability=float(pre.sticky_actions),
            full_action_space=pre.full_action_space,
            img_height=int(pre.screen_size),
            img_width=int(pre.screen_size),
            grayscale=True,
            stack_num=int(pre.frame_stack),
            frameskip=self.frame_skip,
            maxpool=True,
            noop_max=int(pre.noop_max),
            episodic_life=False,
            reward_clipping=bool(pre.clip_rewards),
            use_fire_reset=bool(pre.fire_reset),
            autoreset_mode="NextStep",
        )
        self._init_spaces(self.ale.single_observation_space, self.ale.single_action_space)
        self.metadata = {**self.metadata, "render_fps": 60 // self.frame_skip}
        self._init_seeds("cpu")

    def reset(self, *, seed: Seed = None, options: dict | None = None) -> tuple[torch.Tensor, dict]:
        mask, state = self._reset_bookkeeping(seed, options)
        if state is not None:
            raise ValueError(f"{self.spec_id}: an Atari game cannot be reset to a given state")
        mask = as_mask(mask, self.num_envs, "cpu")
        if self.episodes is None:
            mask = None  # every game starts once before any step
            self.episodes = EpisodeState(self.num_envs, self.obs_dim, self.max_episode_steps, obs_dtype=torch.uint8)
        if mask is not None and not bool(mask.any()):
            return self.episodes.obs.to(self.device), {}
        # Every game is seeded, which makes ale-py reload the ROM (about 0.1 CPU-second a game, ~200 agent steps of
        # it): without a seed, a restarted game is not the game a fresh env plays, even without no-ops and sticky
        # actions (measured on Frostbite: the same actions lasted 247 or 248 steps, alternating reset to reset).
        seeds = np.array([ale_seed(s) for s in self.episode_seeds()], dtype=np.int64)
        if mask is None:
            frames, _ = self.ale.reset(seed=seeds)
        else:
            index = mask.numpy()
            frames, _ = self.ale.reset(seed=seeds[index], options={"reset_mask": index})  # all N observations
        obs = self.episodes.reset(mask, torch.from_numpy(frames.reshape(self.num_envs, -1)))
        return obs.to(self.device), {}

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        if self.episodes is None:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions)
        self.check_actions(actions)
        frames, rewards, ended, cut, _ = self.ale.step(actions.detach().cpu().numpy().astype(np.int64))
        # ale-py hands over a new frames buffer on every step: the games that had ended get their last frames
        # back in it, row by row in numpy (one thread; see EpisodeState.step's obs_held)
        frames = frames.reshape(self.num_envs, -1)
        ended_before = ~self.episodes.running.numpy()
        if ended_before.any():
            frames[ended_before] = self.episodes.obs.numpy()[ended_before]
        obs, reward, terminated, truncated = self.episodes.step(
            torch.from_numpy(frames),
            torch.from_numpy(np.asarray(rewards, dtype=np.float32)),
            torch.from_numpy(np.asarray(ended, dtype=bool)),
            torch.from_numpy(np.asarray(cut, dtype=bool)),
            obs_held=True,
        )
        return obs.to(self.device), reward.to(self.device), terminated.to(self.device), truncated.to(self.device), {}

    def close(self) -> None:
        self.ale.close()


def _cores() -> set[int]:
    import os

    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def gymnasium_reference(env_id: str, **settings: Any) -> tuple[dict, list]:
    """The same preprocessing on gymnasium's own ``ALE/...`` env, as ``gym.make_vec`` arguments and wrappers:
    the reference a policy trained on the atari backend is evaluated on (``neuroevo eval --backend gymnasium``)."""
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformReward

    game_of(env_id)
    pre = Preprocessing(**settings).check(env_id)
    if pre.fire_reset:
        raise ValueError(f"{env_id}: fire_reset has no gymnasium wrapper; evaluate with fire_reset = false")
    if importlib.util.find_spec("cv2") is None:
        raise ImportError("gymnasium's AtariPreprocessing needs OpenCV: pip install 'neuroevo[atari]'")

    def preprocess(env: gym.Env) -> gym.Env:
        env = AtariPreprocessing(env, noop_max=pre.noop_max, frame_skip=pre.frame_skip, screen_size=pre.screen_size,
                                 grayscale_obs=True, terminal_on_life_loss=False, scale_obs=False)
        if pre.clip_rewards:
            env = TransformReward(env, lambda r: float(np.sign(float(r))))
        # ale-py pads a new game's stack with blank frames
        return FrameStackObservation(env, pre.frame_stack, padding_type="zero")

    return pre.gym_make_kwargs, [preprocess]
