"""Part 3's ``evotorch`` row: EvoTorch's ``GymNE`` evaluating the same members as our backends.

The members are translated to ``nn.Linear``'s layout (:func:`module_layout`) and checked to compute the
same actions; GymNE evaluates a ``SolutionBatch`` of them on Ray actors (in-process for 1). Its env steps
are its ``interaction_count``. EvoTorch is optional (``pip install -e ".[bench]"``): without it, the row is
skipped with a note.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
from functools import partial
from typing import Any

import torch
from torch.nn.utils import parameters_to_vector

from neuroevo.bench.common import timed
from neuroevo.policies import Policy


def evotorch_network(policy: Policy) -> str:
    """``policy``'s architecture as an EvoTorch network string, e.g. "Linear(obs_length, act_length)"."""
    sizes = ["obs_length", *map(str, getattr(policy, "hidden", ())), "act_length"]
    return " >> Tanh() >> ".join(f"Linear({a}, {b})" for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def module_layout(policy: Policy, params: torch.Tensor) -> torch.Tensor:
    """params [P, D] in our flat layout -> [P, D] in the order of the parameters of ``policy.to_module``
    (``nn.Linear``'s weight [out, in], then bias, layer by layer), the order EvoTorch fills them in.
    A loop over members: this runs once per bench row, not on a hot path."""
    return torch.stack([parameters_to_vector(policy.to_module(member).parameters()) for member in params])


def _check_same_policy(problem: Any, policy: Policy, params: torch.Tensor, values: torch.Tensor) -> None:
    """Raise unless EvoTorch's network filled with ``values[0]`` computes ``policy`` with ``params[0]``."""
    obs = torch.randn(policy.obs_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = problem.make_net(values[0])(obs)
    ours = policy(params[:1], obs[None, None])[0, 0]
    if not torch.allclose(theirs, ours, atol=1e-5):
        raise RuntimeError(f"EvoTorch's {evotorch_network(policy)!r} does not compute our {policy.kind} policy")


def bench_evotorch(
    env_id: str, policy: Policy, params: torch.Tensor, actors: int, max_steps: int | None, repeats: int
) -> dict[str, Any]:
    """Env steps/s of EvoTorch's ``GymNE`` evaluating the members ``params`` [P, D], one episode each,
    on ``actors`` Ray actors (in this process for 1). A warm-up evaluation of one member per actor
    starts the actors; each timed repeat evaluates the whole ``SolutionBatch``, and its env steps are the
    growth of the problem's ``interaction_count``. The episodes are GymNE's own (unseeded), so the
    median is taken over the repeats' rates. Ray, when it is not running yet, is started by EvoTorch."""
    from evotorch.neuroevolution import GymNE

    popsize = params.shape[0]
    # Ray offers os.cpu_count() CPUs and gives each actor one: more actors than that would wait forever.
    actors = min(actors, popsize, os.cpu_count() or 1)
    problem = GymNE(
        env=env_id,
        network=evotorch_network(policy),
        num_actors=actors if actors > 1 else None,
        observation_normalization=False,
        episode_length=max_steps,
    )
    values = module_layout(policy, params)
    runs, actors_started = [], False
    try:
        _check_same_policy(problem, policy, params, values)
        warmup = problem.generate_batch(actors)
        warmup.set_values(values[:actors])
        actors_started = actors > 1
        problem.evaluate(warmup)
        batch = problem.generate_batch(popsize)
        batch.set_values(values)
        for _ in range(repeats):
            steps, episodes = problem.interaction_count, problem.episode_count
            seconds, _ = timed(partial(problem.evaluate, batch), torch.device("cpu"))
            runs.append((problem.interaction_count - steps, problem.episode_count - episodes, seconds))
    finally:
        if actors_started:
            problem.kill_actors()
    steps, episodes, seconds = (sum(r[i] for r in runs) for i in range(3))
    return {
        "backend": "evotorch",
        "device": "cpu",
        "policy": policy.kind,
        "workers": actors,
        "popsize": popsize,
        "env_steps": runs[0][0],
        "mean_episode_length": steps / episodes,
        "seconds": statistics.median(r[2] for r in runs),
        "env_steps_per_s": statistics.median(r[0] / r[2] for r in runs),
    }


def usable(settings: dict[str, Any], notes: list[str]) -> bool:
    """Whether the row is asked for (not ``--no-evotorch``) and EvoTorch is installed (else a note)."""
    if not settings["evotorch"]:
        return False
    if importlib.util.find_spec("evotorch") is None:
        notes.append("evotorch: row skipped, not installed (pip install evotorch)")
        return False
    return True
