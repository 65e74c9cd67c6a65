"""``check_env``: hold any batched env, ours or a user's, to the contract of :mod:`neuroevo.envs.base`.

In the spirit of gymnasium's ``utils/env_checker.py``, for neuroevo's batched contract: each check steps
the env a handful of times with random actions (drawn from a generator seeded with ``seed``) and raises
:class:`EnvContractError`, an ``AssertionError``, with a one-line message naming the env and what is wrong.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, NoReturn, cast

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

from neuroevo.envs.base import VectorEnv

#: steps a finished episode is watched for after it ended
STICKY_STEPS = 3
#: steps after a masked reset compared against the reference runs
AFTER_RESET_STEPS = 2
#: steps with a NaN action entry in one env
NAN_STEPS = 3


#: integer observation dtypes an env may return as they are (pixels), numpy's name -> torch's
_TORCH_DTYPES = {"uint8": torch.uint8, "int8": torch.int8, "int16": torch.int16, "int32": torch.int32}


class EnvContractError(AssertionError):
    """An env breaks the batched-env contract; the message names the env and what is wrong."""


class EnvContractWarning(UserWarning):
    """A check of :func:`check_env` could not run (e.g. no episode ended within ``steps``)."""


def check_env(env: VectorEnv, *, steps: int = 64, seed: int = 0, fresh: bool = True) -> None:
    """Check that ``env`` keeps neuroevo's batched-env contract (see :mod:`neuroevo.envs.base`).

    Checks, in order (the first failure raises :class:`EnvContractError`):

    - **spaces**: ``single_observation_space`` a Box, ``single_action_space`` a Box or Discrete, the batched
      ``observation_space`` / ``action_space`` those batched over ``num_envs``, ``obs_dim`` their size.
    - **step before reset** raises ``RuntimeError`` (only when ``fresh``).
    - **returns**: ``reset`` gives (obs [N, obs_dim] float, dict); every ``step`` the 5-tuple obs [N, obs_dim]
      float (or the observation space's integer dtype: uint8 pixels), reward [N] float, terminated [N] bool,
      truncated [N] bool, dict; all tensors on ``env.device``.
    - **seeds**: ``reset(seed=s)`` twice and the same actions give identical obs, rewards and flags;
      ``reset(seed=s)`` is ``reset(seed=[s, s + 1, ...])``; permuting a seed tensor across the slots
      permutes the start observations (a start state is a function of its seed, not of its slot).
    - **sticky episodes**: random actions until some episode ends (at most ``steps`` steps; if none ends, an
      :class:`EnvContractWarning` says so and these checks are skipped: make the env with a short
      ``max_episode_steps``); from then on a finished env returns its last observation, reward 0 and the same
      flags, while the running envs go on; an env still running at step ``max_episode_steps`` truncates then,
      not before.
    - **reset by mask**: after ``reset(options={"reset_mask": mask})`` the masked envs (a finished one among
      them) start the same episodes as a full ``reset()`` would, the others go on exactly as if no reset happened.
    - **bad actions**: a batch of the wrong shape, or float actions for a Discrete space, raise a one-line
      ``ValueError``; a NaN entry in one env's Box action raises nothing and leaves every other env's obs,
      reward and flags what they are without it.

    The runs are compared with each other on the same env, so the env must be deterministic given its seeds.
    The checks take a few dozen steps (about ``3 * steps`` at most) and leave the env reset, not closed.

    Args:
        env: the batched env, fresh from its constructor (never reset).
        steps: the most steps of the run that waits for an episode to end.
        seed: the seed of the env's resets and of the random actions.
        fresh: False for an env that was reset before: the step-before-reset check is skipped.
    """
    checker = _Checker(env, steps, seed)
    checker.check_spaces()
    if fresh:
        checker.check_step_before_reset()
    checker.check_seeds()
    run = checker.run_until_an_episode_ends()
    checker.check_sticky(run)
    checker.check_time_limit(run)
    replay, after = checker.check_replay(run)
    checker.check_reset_by_mask(run, replay, after)
    checker.check_bad_actions()
    checker.check_nonfinite_action(run, replay)


class _Step(NamedTuple):
    obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


class _Run(NamedTuple):
    """One seeded run: its start obs, its actions (one per step) and what each step returned."""

    obs: torch.Tensor
    actions: list[torch.Tensor]
    steps: list[_Step]

    def first_done(self) -> torch.Tensor:
        """Per env, the step (1-based) its episode ended at, or 0 if it did not: [N] int64."""
        done = torch.stack([s.terminated | s.truncated for s in self.steps]).cpu()
        first = done.int().argmax(0) + 1
        return torch.where(done.any(0), first, 0)


def _differ(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row, whether ``a`` and ``b`` differ (NaN equals NaN): [N] bool on the CPU."""
    a, b = a.cpu(), b.cpu()
    same = a == b
    if a.is_floating_point():
        same = same | (a.isnan() & b.isnan())
    return ~same.reshape(len(a), -1).all(1)


def _envs(rows: torch.Tensor) -> str:
    return ", ".join(str(i) for i in torch.nonzero(rows).flatten().tolist())


class _Checker:
    def __init__(self, env: VectorEnv, steps: int, seed: int):
        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        self.env = env
        self.steps = steps
        self.seed = int(seed)
        spec_id = getattr(env, "spec_id", None)
        self.name = f"{spec_id} ({type(env).__name__})" if spec_id else type(env).__name__
        self.generator = torch.Generator().manual_seed(self.seed)

    def fail(self, message: str) -> NoReturn:
        raise EnvContractError(f"{self.name}: {message}")

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return self.env.num_envs

    def on_device(self, t: torch.Tensor) -> bool:
        device = torch.device(self.env.device)
        return t.device.type == device.type and (device.index is None or t.device.index == device.index)

    def check_tensor(self, t: Any, what: str, shape: tuple, kind: str) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            self.fail(f"{what} must be a torch.Tensor, got {type(t).__name__}")
        if kind == "obs":  # float, or the observation space's own integer dtype (uint8 pixels)
            space_dtype = np.dtype(self.env.single_observation_space.dtype)
            ok = t.is_floating_point() or t.dtype == _TORCH_DTYPES.get(space_dtype.name)
            kind = "float" if space_dtype.kind == "f" else f"float or {space_dtype.name}"
        else:
            ok = t.is_floating_point() if kind == "float" else t.dtype == torch.bool
        if not ok:
            self.fail(f"{what} must be a {kind} tensor, got {t.dtype}")
        if tuple(t.shape) != shape:
            self.fail(f"{what} must have shape {shape}, got {tuple(t.shape)}")
        if not self.on_device(t):
            self.fail(f"{what} is on {t.device}, not on env.device = {self.env.device}")
        return t.detach().clone()  # an env may write into the tensors it returned; the comparisons must not see it

    def reset(self, what: str, **kwargs: Any) -> torch.Tensor:
        out = self.env.reset(**kwargs)
        if not (isinstance(out, tuple) and len(out) == 2):
            self.fail(f"{what} must return (obs, info), got {type(out).__name__}")
        obs, info = out
        if not isinstance(info, dict):
            self.fail(f"{what} must return a dict info, got {type(info).__name__}")
        return self.check_tensor(obs, f"{what}'s obs", (self.num_envs, self.env.obs_dim), "obs")

    def step(self, actions: torch.Tensor, what: str) -> _Step:
        out = self.env.step(actions)
        if not (isinstance(out, tuple) and len(out) == 5):
            self.fail(f"{what} must return (obs, reward, terminated, truncated, info), got {type(out).__name__}")
        obs, reward, terminated, truncated, info = out
        if not isinstance(info, dict):
            self.fail(f"{what} must return a dict info, got {type(info).__name__}")
        n = self.num_envs
        return _Step(
            self.check_tensor(obs, f"{what}'s obs", (n, self.env.obs_dim), "obs"),
            self.check_tensor(reward, f"{what}'s reward", (n,), "float"),
            self.check_tensor(terminated, f"{what}'s terminated", (n,), "bool"),
            self.check_tensor(truncated, f"{what}'s truncated", (n,), "bool"),
        )

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random actions for every env (from the checker's generator by default): [N] int64 or [N, *shape]
        float32, uniform within a Box's finite bounds, standard normal where they are infinite."""
        space, n, generator = self.env.single_action_space, self.num_envs, generator or self.generator
        if isinstance(space, gym.spaces.Discrete):
            actions = int(space.start) + torch.randint(int(space.n), (n,), generator=generator)
        else:
            box = cast(gym.spaces.Box, space)  # check_spaces has made sure it is one
            low, high = (torch.as_tensor(b, dtype=torch.float32) for b in (box.low, box.high))
            u = torch.rand((n, *box.shape), generator=generator)
            normal = torch.randn((n, *box.shape), generator=generator)
            bounded = torch.isfinite(low) & torch.isfinite(high)
            actions = torch.where(bounded, low + (high - low) * u, normal)
        return actions.to(self.env.device)

    def seeds(self) -> torch.Tensor:
        return self.seed + torch.arange(self.num_envs, dtype=torch.int64)

    def compare(self, got: _Step, want: _Step, rows: torch.Tensor, what: str) -> None:
        for field in _Step._fields:
            bad = _differ(getattr(got, field), getattr(want, field)) & rows
            if bool(bad.any()):
                self.fail(f"{what}: the {field} of env {_envs(bad)} differs")

    # -- the checks ----------------------------------------------------------------------------------
    def check_spaces(self) -> None:
        env = self.env
        for attr in ("num_envs", "device", "single_observation_space", "single_action_space",
                     "observation_space", "action_space", "obs_dim", "max_episode_steps"):
            if not hasattr(env, attr):
                self.fail(f"has no attribute {attr!r}")
        if not isinstance(env.num_envs, int) or env.num_envs <= 0:
            self.fail(f"num_envs must be a positive int, got {env.num_envs!r}")
        obs_space, action_space = env.single_observation_space, env.single_action_space
        if not isinstance(obs_space, gym.spaces.Box):
            self.fail(f"single_observation_space must be a Box, got {obs_space}")
        if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
            self.fail(f"single_action_space must be a Box or Discrete, got {action_space}")
        for batched, single in (("observation_space", obs_space), ("action_space", action_space)):
            if getattr(env, batched) != batch_space(single, env.num_envs):
                self.fail(f"{batched} {getattr(env, batched)} is not single_{batched} batched over {env.num_envs} envs")
        if env.obs_dim != int(np.prod(obs_space.shape)):
            self.fail(f"obs_dim is {env.obs_dim}, but single_observation_space has shape {obs_space.shape}")
        limit = env.max_episode_steps
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            self.fail(f"max_episode_steps must be None or a positive int, got {limit!r}")

    def check_step_before_reset(self) -> None:
        try:
            self.env.step(self.sample(torch.Generator().manual_seed(self.seed)))  # the run's actions stay the same
        except RuntimeError:
            return
        except Exception as err:
            self.fail(f"step() before any reset() raised {type(err).__name__}, not RuntimeError: {err}")
        self.fail("step() before any reset() returned; it must raise RuntimeError (check_env(fresh=False) "
                  "skips this check for an env that was reset before)")

    def check_seeds(self) -> None:
        first = self.reset(f"reset(seed={self.seed})", seed=self.seed)
        bad = _differ(self.reset(f"reset(seed={self.seed})", seed=self.seed), first)
        if bool(bad.any()):
            self.fail(f"reset(seed={self.seed}) twice gave different observations for env {_envs(bad)}")
        bad = _differ(self.reset("reset(seed=tensor)", seed=self.seeds()), first)
        if bool(bad.any()):
            self.fail(f"reset(seed={self.seed}) must seed env i with {self.seed} + i, as a seed tensor does; "
                      f"env {_envs(bad)} started elsewhere")
        if self.num_envs > 1:
            perm = torch.roll(torch.arange(self.num_envs), 1)
            bad = _differ(self.reset("reset(seed=permuted tensor)", seed=self.seeds()[perm]), first[perm])
            if bool(bad.any()):
                self.fail(f"permuting the seeds across slots did not permute the start observations (env "
                          f"{_envs(bad)}): a start state must be a function of its seed, not of its slot")

    def run_until_an_episode_ends(self) -> _Run:
        """Random actions from ``reset(seed=seed)`` until some episode ended STICKY_STEPS steps ago and the
        time limit (if within ``steps``) has passed, or for ``steps`` steps."""
        obs = self.reset(f"reset(seed={self.seed})", seed=self.seed)
        limit = self.env.max_episode_steps
        wait_for_limit = limit is not None and limit < self.steps
        run, ended = _Run(obs, [], []), None
        for t in range(1, self.steps + 1):
            run.actions.append(self.sample())
            run.steps.append(self.step(run.actions[-1], f"step {t}"))
            if ended is None and bool((run.steps[-1].terminated | run.steps[-1].truncated).any()):
                ended = t
            if ended is not None and t >= ended + STICKY_STEPS and not (wait_for_limit and t <= (limit or 0)):
                break
        if ended is None:
            warnings.warn(
                f"{self.name}: no episode ended within {self.steps} steps of random actions, so the checks of "
                "finished episodes were skipped; make the env with a short max_episode_steps or raise steps",
                EnvContractWarning,
                stacklevel=3,
            )
        return run

    def check_sticky(self, run: _Run) -> None:
        first = run.first_done()
        for i in torch.nonzero(first > 0).flatten().tolist():
            ended = int(first[i])
            last = run.steps[ended - 1]
            for t in range(ended + 1, len(run.steps) + 1):
                self.check_finished_env(i, ended, last, t, run.steps[t - 1])
        self.check_running_go_on(run, first)

    def check_finished_env(self, i: int, ended: int, last: _Step, t: int, now: _Step) -> None:
        what = f"env {i} finished at step {ended}, but step {t}"
        if bool(_differ(now.obs[i : i + 1], last.obs[i : i + 1]).any()):
            self.fail(f"{what} returned a new observation (autoreset?); a finished episode returns its last "
                      "observation until it is reset")
        if float(now.reward[i]) != 0.0:
            self.fail(f"{what} returned reward {float(now.reward[i])}; a finished episode returns 0")
        if (bool(now.terminated[i]), bool(now.truncated[i])) != (bool(last.terminated[i]), bool(last.truncated[i])):
            self.fail(f"{what} changed its terminated / truncated flags; they stay until it is reset")

    def check_running_go_on(self, run: _Run, first: torch.Tensor) -> None:
        """After the first episode ended, some env still running must still move (obs or reward)."""
        ended = int(first[first > 0].min()) if bool((first > 0).any()) else None
        if ended is None:
            return
        watched = False
        for t in range(ended + 1, len(run.steps) + 1):
            running = (first == 0) | (first >= t)  # stepped at step t while its episode ran
            moved = _differ(run.steps[t - 1].obs, run.steps[t - 2].obs) | (run.steps[t - 1].reward.cpu() != 0)
            if bool((running & moved).any()):
                return
            watched = watched or bool(running.any())
        if watched:
            self.fail(f"after an episode ended at step {ended}, no running env changed its observation or got a "
                      "reward: one finished env must not stop the others")

    def check_time_limit(self, run: _Run) -> None:
        limit = self.env.max_episode_steps
        if limit is None or limit > len(run.steps):
            return
        terminated = torch.stack([s.terminated for s in run.steps]).cpu()
        ran = ~terminated[: limit - 1].any(0)  # still running when the last step of the limit began
        at_limit = run.steps[limit - 1].truncated.cpu()
        bad = ran & ~at_limit
        if bool(bad.any()):
            self.fail(f"env {_envs(bad)} ran {limit} steps without terminating but was not truncated at "
                      f"max_episode_steps={limit}")
        if limit > 1:
            early = run.steps[limit - 2].truncated.cpu()
            if bool(early.any()):
                self.fail(f"env {_envs(early)} was truncated before max_episode_steps={limit}")

    def check_replay(self, run: _Run) -> tuple[list[_Step], list[torch.Tensor]]:
        """Replay the run from ``reset(seed=seed)``: it must be identical. Then AFTER_RESET_STEPS more steps
        under new actions; returns every step of the replay and those actions."""
        obs = self.reset(f"reset(seed={self.seed}) again", seed=self.seed)
        bad = _differ(obs, run.obs)
        if bool(bad.any()):
            self.fail(f"reset(seed={self.seed}) after a run gave env {_envs(bad)} another start observation")
        replay = []
        everyone = torch.ones(self.num_envs, dtype=torch.bool)
        for t, actions in enumerate(run.actions, start=1):
            replay.append(self.step(actions, f"replayed step {t}"))
            self.compare(replay[-1], run.steps[t - 1], everyone,
                         f"reset(seed={self.seed}) and the same actions again: at step {t} (a reset must start a "
                         "fresh episode, flags cleared, from a start state that is a function of the seed)")
        after = [self.sample() for _ in range(AFTER_RESET_STEPS)]
        replay += [self.step(a, f"step {len(run.steps) + k + 1}") for k, a in enumerate(after)]
        return replay, after

    def reset_mask(self, run: _Run) -> torch.Tensor:
        """Every other env, with the first finished env in and (if any) the second one out."""
        mask = torch.arange(self.num_envs) % 2 == 0
        finished = torch.nonzero(run.first_done() > 0).flatten().tolist()
        if finished:
            mask[finished[0]] = True
        if len(finished) > 1:
            mask[finished[1]] = False
        return mask

    def check_reset_by_mask(self, run: _Run, replay: list[_Step], after: list[torch.Tensor]) -> None:
        """Run A: the run, a masked reset, then ``after``; against the replay (run then ``after``) outside the
        mask, and against ``reset(seed)``, ``reset()``, ``after`` inside it."""
        mask, steps = self.reset_mask(run), len(run.steps)
        self.reset(f"reset(seed={self.seed})", seed=self.seed)
        for t, actions in enumerate(run.actions, start=1):
            self.step(actions, f"step {t}")
        masked_obs = self.reset("reset(reset_mask)", options={"reset_mask": mask.to(self.env.device)})
        masked = [self.step(a, "a step after reset(reset_mask)") for a in after]
        bad = _differ(masked_obs, replay[steps - 1].obs) & ~mask
        if bool(bad.any()):
            self.fail(f"reset(options={{'reset_mask': ...}}) changed the observation of env {_envs(bad)}, "
                      "which was not in the mask")
        for k, step in enumerate(masked):
            self.compare(step, replay[steps + k], ~mask,
                         f"step {k + 1} after a masked reset, of envs outside the mask (they must go on as if "
                         "no reset had happened)")

        self.reset(f"reset(seed={self.seed})", seed=self.seed)
        full_obs = self.reset("reset()")
        full = [self.step(a, "a step after reset()") for a in after]
        bad = _differ(masked_obs, full_obs) & mask
        if bool(bad.any()):
            self.fail(f"a masked reset started env {_envs(bad)} elsewhere than a full reset() does "
                      "(a start state is a function of the seed and of the resets since)")
        for k, step in enumerate(masked):
            self.compare(step, full[k], mask, f"step {k + 1} after a masked reset, of the masked envs, against "
                         "the same step after a full reset()")

    def bad_actions(self) -> list[tuple[torch.Tensor, str]]:
        space, n, device = self.env.single_action_space, self.num_envs, self.env.device
        if isinstance(space, gym.spaces.Discrete):
            return [
                (torch.zeros(n, 1, dtype=torch.int64, device=device), "int actions of shape [N, 1]"),
                (torch.zeros(n + 1, dtype=torch.int64, device=device), "int actions for N + 1 envs"),
                (torch.zeros(n, device=device), "float actions"),
            ]
        shape = space.shape or ()
        size = int(np.prod(shape))
        return [
            (torch.zeros(n + 1, *shape, device=device), "actions for N + 1 envs"),
            (torch.zeros(n, size + 1, device=device), f"actions of shape [N, {size + 1}]"),
        ]

    def check_bad_actions(self) -> None:
        self.reset(f"reset(seed={self.seed})", seed=self.seed)
        space = self.env.single_action_space
        for actions, what in self.bad_actions():
            try:
                self.env.step(actions)
            except ValueError as err:
                if "\n" in str(err) or not str(err):
                    self.fail(f"step() with {what} for a {space} raised a ValueError of more or less than one line")
                continue
            except Exception as err:
                self.fail(f"step() with {what} for a {space} raised {type(err).__name__}, not ValueError: {err}")
            self.fail(f"step() accepted {what} for a {space}; it must raise ValueError")

    def check_nonfinite_action(self, run: _Run, replay: list[_Step]) -> None:
        if not isinstance(self.env.single_action_space, gym.spaces.Box):
            return
        self.reset(f"reset(seed={self.seed})", seed=self.seed)
        others = torch.arange(self.num_envs) != 0
        for t, actions in enumerate(run.actions[:NAN_STEPS], start=1):
            actions = actions.clone()
            actions[0].view(-1)[0] = torch.nan
            try:
                step = self.step(actions, f"step {t} with a NaN action entry in env 0")
            except EnvContractError:
                raise
            except Exception as err:
                self.fail(f"a NaN entry in env 0's action raised {type(err).__name__}: {err}")
            self.compare(step, replay[t - 1], others, f"step {t} with a NaN entry in env 0's action (the other envs "
                         "must not notice)")
