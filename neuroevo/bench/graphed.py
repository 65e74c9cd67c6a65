"""A CUDA-graphed population evaluation of a torch-native env: the GPU check's "graphed" CartPole rows.

``rollout.evaluate`` launches every kernel of every step from Python, a few dozen per step; at small and middling
batches a GPU then waits on the launches rather than on the work. :class:`GraphedRollout` captures ``block``
steps of the very same step function (``rollout._step``: forward, action head, env step, masks) once as one CUDA
graph, and an evaluation replays it, one launch per ``block`` steps, asking after each replay whether any episode
is still running (one host sync per block, as ``evaluate`` syncs every ``SYNC_EVERY`` steps).

A graph replays fixed memory, so everything a step reads lives in buffers made once: the params, the loop's own
tensors (obs, alive, return, length) and the env's tensors (its state and its :class:`EpisodeState`'s). The
step itself updates out of place; the captured block ends by copying its results into those buffers, and the
env's attributes are pointed back at them. An evaluation resets the env eagerly (with its episode seeds), copies
the fresh state into the buffers, and replays.

Scope: one episode per member (num_envs = P), no normalizer or observation statistics, episodes ended by the
env's own time limit (blocks may run past it: those steps are masked, as after any episode's end). With
``emulate=True`` a replay runs the captured Python instead (any device): the same buffer handling, checked
against ``evaluate`` on the CPU by the tests; only a CUDA device captures a real graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from neuroevo.envs.base import TorchVectorEnv
from neuroevo.policies import Policy
from neuroevo.rollout import SYNC_EVERY, Evaluation, _frozen, _step


class GraphedRollout:
    """``block`` steps of ``rollout._step`` for P members on ``env`` (a :class:`TorchVectorEnv` of P envs),
    captured once as a CUDA graph; :meth:`run` evaluates one episode per member, as ``evaluate`` does.

    Args:
        policy: the population's policy.
        params: [P, D]; copied into the graph's own buffer (``run(params=...)`` replaces them).
        env: a torch-native env of P envs on a CUDA device (any device with ``emulate``).
        block: env steps per replay (one host sync each).
        emulate: replay by running the captured Python (no CUDA graph): the CPU check of the buffer handling.
    """

    def __init__(self, policy: Policy, params: torch.Tensor, env: TorchVectorEnv, block: int = SYNC_EVERY,
                 emulate: bool = False):
        if not isinstance(env, TorchVectorEnv):
            raise ValueError(f"a graphed rollout steps torch-native envs, not {type(env).__name__}")
        if params.ndim != 2 or env.num_envs != params.shape[0]:
            raise ValueError(f"one episode per member: the env needs P = {params.shape[0]} envs, has {env.num_envs}")
        if env.max_episode_steps is None:
            raise ValueError(f"{env.spec_id} has no time limit to end its episodes")
        if not emulate and env.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, the env is on {env.device} (emulate=True replays "
                             "the Python instead)")
        self.policy, self.env, self.block = policy, env, int(block)
        self.params = params.detach().to(env.device).clone()
        self.frozen = _frozen(env, None, self.params.dtype, 0.0)
        self.blocks = math.ceil(env.max_episode_steps / self.block)
        obs, _ = env.reset(seed=0)  # makes the env's tensors, which become its buffers
        popsize = self.params.shape[0]
        self.loop = {
            "obs": obs.clone(),
            "alive": torch.ones(popsize, 1, dtype=torch.bool, device=env.device),
            "ret": torch.zeros(popsize, 1, device=env.device),
            "length": torch.zeros(popsize, 1, dtype=torch.int64, device=env.device),
        }
        self.owners: list[Any] = [env, env.episodes]
        self.buffers = {(i, name): value.clone() for i, owner in enumerate(self.owners)
                        for name, value in vars(owner).items() if isinstance(value, torch.Tensor)}
        self._rebind()
        self.emulated = emulate
        self._replay: Callable[[], None] = self._block if emulate else self._capture()

    def _rebind(self) -> None:
        """Copy each env tensor that the env replaced into its buffer, and point the env back at the buffer."""
        for (i, name), buffer in self.buffers.items():
            current = getattr(self.owners[i], name)
            if current is not buffer:
                buffer.copy_(current)
                setattr(self.owners[i], name, buffer)

    def _block(self) -> None:
        """``block`` steps from the buffers, their results copied back into them (what the graph holds)."""
        loop = self.loop
        obs, alive, ret, length = loop["obs"], loop["alive"], loop["ret"], loop["length"]
        for _ in range(self.block):
            obs, alive, ret, length, _ = _step(self.policy, self.env, self.frozen, self.params, None, obs, alive,
                                               ret, length, None)
        for name, value in (("obs", obs), ("alive", alive), ("ret", ret), ("length", length)):
            loop[name].copy_(value)
        self._rebind()

    def _capture(self) -> Callable[[], None]:
        device = self.env.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.no_grad():
            self._block()  # warm-up outside the capture (lazy initialization); run() resets the buffers anyway
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            self._block()
        self.graph = graph
        return graph.replay

    @torch.no_grad()
    def run(self, seed: int, params: torch.Tensor | None = None) -> Evaluation:
        """One episode per member, member p's from seed ``seed + p`` (as ``evaluate(..., seed=seed)``)."""
        if params is not None:
            self.params.copy_(params)
        obs, _ = self.env.reset(seed=seed)
        self._rebind()
        loop = self.loop
        loop["obs"].copy_(obs)
        loop["alive"].fill_(True)
        loop["ret"].zero_()
        loop["length"].zero_()
        for _ in range(self.blocks):
            self._replay()
            if not bool(loop["alive"].any()):
                break
        ret, length = loop["ret"].clone(), loop["length"].clone()
        return Evaluation(returns=ret.mean(1), episode_returns=ret, episode_lengths=length,
                          env_steps=int(length.sum()), obs_stats=None,
                          nonfinite_episodes=int((~torch.isfinite(ret)).sum()))
