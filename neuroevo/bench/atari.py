"""Atari population evaluation, frames per second: our atari backend against ale-py's vector env driven by a plain
loop and gymnasium's vector env, the same policy and members on each, in one run.

Every row plays P members, one game each, for ``--steps`` agent steps (``frame_skip`` frames each) with the same
population forward per step (``--policy``: a conv policy, or ``random`` for the emulators alone):

- ``neuroevo``: ``rollout.evaluate`` on ``make_env(id, P, backend="atari")``: ale-py's C++ threads under our
  contract; a finished game's frames are not counted (they are masked, and ale-py restarts it by itself).
- ``ale-py loop``: ale-py's ``AtariVectorEnv`` with the same preprocessing and episode cap, stepped by a plain
  Python loop (observations to torch, the forward, argmax actions); every frame counts, restarted games included.
- ``gymnasium``: ``gymnasium.make_vec`` of the ``ALE/...`` id with ``AtariPreprocessing`` and
  ``FrameStackObservation`` (the reference stack of ``neuroevo eval --backend gymnasium``), same loop.

The figure is the median over ``--repeats`` of frames per second; the rows run one after another, so a
shared machine's load reaches them all (the report prints it). ``stepped/s`` counts every frame the emulators ran
in lock-step, finished games included (our row's frames/s counts only running games, as its fitness does).
``frames/cpu-s`` divides the frames by the CPU time the process spent (every thread: the emulators', torch's,
Python's): work per core-second, which the load of a shared machine disturbs less than wall time does, and
which drops when threads spin instead of working.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from neuroevo.bench.common import (
    Column,
    Table,
    command_line,
    cpu_model,
    field,
    fmt_count,
    load_average,
    pick,
    write_json,
)

#: settings of the three rows: the papers' preprocessing without no-op starts, so every row plays alike
SETTINGS: dict[str, Any] = {"noop_max": 0, "frame_skip": 4, "frame_stack": 4, "screen_size": 84, "sticky_actions": 0.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="ALE/Frostbite-v5", help="an ALE id (default ALE/Frostbite-v5)")
    parser.add_argument("--popsize", type=int, default=None, help="members P, one game each (default 32)")
    parser.add_argument("--steps", type=int, default=None, help="agent steps per game (default 400)")
    parser.add_argument("--policy", default="nature", choices=("nature", "small", "random"),
                        help="the population forward per step: the Nature network, the small one (ConvPolicy's "
                             "archs, valid padding), or 'random' actions (the emulators alone); default nature")
    parser.add_argument("--threads", type=int, default=None, help="emulator threads (default: the cores)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per row (default 3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every row runs")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")


def _forward(kind: str, env: Any, popsize: int):
    """``act(obs [P, obs_dim] tensor) -> actions [P] int64`` for ``kind``, and the policy (None for random)."""
    from neuroevo.policies import PolicyConfig

    n = int(env.single_action_space.n)
    if kind == "random":
        gen = torch.Generator().manual_seed(0)
        return (lambda obs: torch.randint(0, n, (obs.shape[0],), generator=gen)), None
    policy = PolicyConfig(kind="cnn", arch=kind).build(env.obs_dim, env.single_action_space,
                                                       env.single_observation_space)
    params = policy.init_params(torch.Generator().manual_seed(0))[None].repeat(popsize, 1)
    params = params + 0.01 * torch.randn(params.shape, generator=torch.Generator().manual_seed(1))

    def act(obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return policy(params, obs.reshape(popsize, 1, -1))[:, 0].argmax(-1)

    return act, (policy, params)


def _ours(env_id: str, popsize: int, steps: int, kind: str, threads: int | None) -> dict[str, Any]:
    from neuroevo.envs import make_env
    from neuroevo.rollout import evaluate

    env = make_env(env_id, popsize, "cpu", "atari", threads, max_episode_steps=steps, **SETTINGS)
    try:
        act, member = _forward(kind, env, popsize)
        start, cpu = time.perf_counter(), time.process_time()
        if member is None:  # random actions: the env's own loop under the contract
            env.reset(seed=0)
            frames = lockstep = 0
            for _ in range(steps):
                assert env.episodes is not None  # made by the reset
                running = env.episodes.running.clone()
                if not bool(running.any()):
                    break
                env.step(act(torch.zeros(popsize, 1)))
                frames, lockstep = frames + int(running.sum()), lockstep + 1
        else:
            policy, params = member
            result = evaluate(policy, params, env, episodes=1, seed=0)
            frames, lockstep = int(result.env_steps), int(result.episode_lengths.max())
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        env.close()
    skip = SETTINGS["frame_skip"]  # each agent step is frame_skip frames
    return {"frames": frames * skip, "stepped": popsize * lockstep * skip, "seconds": seconds, "cpu": cpu}


def _loop(make: Any, popsize: int, steps: int, kind: str) -> dict[str, Any]:
    """A plain loop over ``make()``'s vector env (autoreset: every step and frame counts)."""
    env = make()
    try:
        act, _ = _forward(kind, _Spaces(env), popsize)
        obs, _ = env.reset(seed=0)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            actions = act(torch.as_tensor(np.asarray(obs)).reshape(popsize, -1))
            obs, *_ = env.step(actions.numpy())
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        env.close()
    return {"frames": popsize * steps * SETTINGS["frame_skip"], "seconds": seconds, "cpu": cpu}


class _Spaces:
    """A gymnasium vector env's single spaces and obs_dim, for :func:`_forward`."""

    def __init__(self, env: Any):
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.obs_dim = int(np.prod(env.single_observation_space.shape))


def _ale(env_id: str, popsize: int, steps: int, threads: int | None):
    from ale_py.vector_env import AtariVectorEnv

    from neuroevo.envs.atari import _cores, game_of

    return lambda: AtariVectorEnv(
        game_of(env_id), popsize, num_threads=threads or len(_cores()), noop_max=0, frameskip=4, stack_num=4,
        max_num_frames_per_episode=(steps + 1) * SETTINGS["frame_skip"] + 1,  # our row's cap: the same resets
        img_height=84, img_width=84, repeat_action_probability=0.0, reward_clipping=False, use_fire_reset=False,
    )


def _gymnasium(env_id: str, popsize: int, steps: int):
    import gymnasium as gym

    from neuroevo.envs.atari import gymnasium_reference

    made, wrappers = gymnasium_reference(env_id, **SETTINGS)
    cap = steps * SETTINGS["frame_skip"]  # gym.make's TimeLimit counts raw frames here: our row's cap
    return lambda: gym.make_vec(env_id, num_envs=popsize, vectorization_mode="sync", wrappers=wrappers,
                                max_episode_steps=cap, **made)


def main(args: argparse.Namespace) -> dict[str, Any]:
    popsize = pick(args.popsize, 4, 32, args.quick)
    steps = pick(args.steps, 20, 400, args.quick)
    repeats = pick(args.repeats, 1, 3, args.quick)
    if min(popsize, steps, repeats) <= 0:
        raise ValueError("--popsize, --steps and --repeats must be positive")
    rows_spec = {
        "neuroevo": lambda: _ours(args.env, popsize, steps, args.policy, args.threads),
        "ale-py loop": lambda: _loop(_ale(args.env, popsize, steps, args.threads), popsize, steps, args.policy),
        "gymnasium": lambda: _loop(_gymnasium(args.env, popsize, steps), popsize, steps, args.policy),
    }
    rows: list[dict[str, Any]] = []
    for name, run in rows_spec.items():
        rates, stepped, per_cpu = [], [], []
        for _ in range(repeats):
            result = run()
            rates.append(float(result["frames"]) / float(result["seconds"]))
            stepped.append(float(result.get("stepped", result["frames"])) / float(result["seconds"]))
            per_cpu.append(float(result["frames"]) / max(float(result["cpu"]), 1e-9))
        rows.append({"stack": name, "frames_per_s": statistics.median(rates),
                     "stepped_per_s": statistics.median(stepped), "frames_per_cpu_s": statistics.median(per_cpu)})
    ours = rows[0]["frames_per_s"]
    for row in rows:
        row["ours_over_it"] = ours / row["frames_per_s"]
    table = Table([
        Column("stack", 12, field("stack"), left=True),
        Column("frames/s", 10, lambda r: fmt_count(r["frames_per_s"])),
        Column("ours / it", 10, field("ours_over_it", ".2f")),
        Column("stepped/s", 10, lambda r: fmt_count(r["stepped_per_s"])),
        Column("frames/cpu-s", 13, lambda r: fmt_count(r["frames_per_cpu_s"])),
    ])
    load = load_average()
    lines = [
        f"Atari population evaluation: {args.env}, {popsize} members x 1 game, {steps} steps "
        f"(x{SETTINGS['frame_skip']} frames), policy {args.policy}, median of {repeats}",
        f"machine: {cpu_model()}, load average {load[0]:.2f}" if load else f"machine: {cpu_model()}",
        *table.lines(rows),
        f"command: {command_line()}",
    ]
    print("\n".join(lines))
    report = {"env": args.env, "popsize": popsize, "steps": steps, "policy": args.policy, "repeats": repeats,
              "settings": SETTINGS, "machine": cpu_model(), "load_average": load, "rows": rows,
              "command": command_line()}
    if args.json:
        write_json(args.json, report)
    return report
