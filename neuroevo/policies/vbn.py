"""Virtual batch normalization (VBN) for conv policies: the reference batch and its plain-data form.

Salimans et al. 2017 ("Evolution Strategies as a Scalable Alternative to Reinforcement Learning", arXiv
1703.03864, section 2.2) used virtual batch normalization (Salimans et al. 2016, "Improved Techniques for
Training GANs") on Atari: batch normalization whose statistics come from a reference batch of observations chosen
once at the start of training and then fixed, so that a member's action depends on its parameters and its own
observation only, never on what else is in the batch, and small parameter changes show in its behaviour. The
reference batch is observations of random-action play of the task (the ES code kept each observation with
probability 0.05 until it had 128).

What :class:`~neuroevo.policies.cnn.ConvPolicy` builds with ``vbn=True``: every hidden layer's pre-activation
(each conv's, per channel over the batch and the image, and the hidden dense layer's, per unit) is normalized by
the mean and variance that *this member's* same layer has on the reference batch, then scaled and shifted by the
member's own per-channel gain and bias (evolved with the other parameters, starting at 1 and 0), then the ReLU.
The reference statistics depend on the member's weights, so each member computes them once per parameter vector
(the reference batch through its network, all members in one batched pass) and folds them into its layers:
every step after that is the plain network's forward. (The GAN paper's VBN also mixes the example itself into
the statistics; the ES paper's description, "the minibatch used for calculating normalizing statistics is chosen
at the start of training and is fixed", uses the reference batch alone, as here.)
"""

from __future__ import annotations

import base64
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from neuroevo.envs.base import VectorEnv

#: the ES code's reference batch: 128 observations, each step's kept with probability 0.05
REFERENCE_SIZE = 128
KEEP_PROBABILITY = 0.05
#: added to the variance before its square root, as batch normalization
EPS = 1e-5


def collect_reference(env: VectorEnv, size: int = REFERENCE_SIZE, seed: int = 0,
                      keep: float = KEEP_PROBABILITY) -> Tensor:
    """``size`` observations [size, obs_dim] (the env's dtype, on the CPU) of uniformly random actions on ``env``
    (discrete actions), each step's observation of each running game kept with probability ``keep``; finished
    games start again from new seeds. Deterministic given ``seed`` and the env."""
    import gymnasium as gym

    space = env.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"{env.spec_id}: a VBN reference batch is collected with discrete random actions, "
                         f"this env's actions are {space}")
    if size <= 0 or not 0.0 < keep <= 1.0:
        raise ValueError(f"reference batch: size must be positive and keep in (0, 1], got {size}, {keep}")
    gen = torch.Generator().manual_seed(seed)
    n = env.num_envs
    obs, _ = env.reset(seed=seed)
    kept: list[Tensor] = []
    count, episode = 0, 1
    while count < size:
        actions = torch.randint(int(space.n), (n,), generator=gen) + int(space.start)
        obs, _, terminated, truncated, _ = env.step(actions)
        running = ~(terminated | truncated).cpu()
        pick = (torch.rand(n, generator=gen) < keep) & running
        if bool(pick.any()):
            kept.append(obs.cpu()[pick])
            count += int(pick.sum())
        if not bool(running.any()):
            obs, _ = env.reset(seed=seed + episode * n)
            episode += 1
    return torch.cat(kept)[:size].contiguous()


def with_reference(policy: Any, env: VectorEnv, size: int, seed: int = 0) -> Any:
    """``policy`` as it is, or for a conv policy with VBN and no reference batch yet, the same policy with a
    reference batch of ``size`` observations collected on ``env`` (:func:`collect_reference`)."""
    from neuroevo.policies.cnn import ConvPolicy

    if not isinstance(policy, ConvPolicy) or not policy.vbn or policy.reference is not None:
        return policy
    reference = collect_reference(env, size, seed)
    return ConvPolicy(policy.obs_shape, policy.act_dim, policy.arch, policy.padding, vbn=True, reference=reference)


def encode(reference: Tensor) -> str:
    """A reference batch as plain data (a policy's spec): dtype, shape and zlib-compressed bytes, in base64."""
    array = reference.detach().cpu().contiguous().numpy()
    head = f"{array.dtype.str}:{'x'.join(map(str, array.shape))}:"
    return head + base64.b64encode(zlib.compress(array.tobytes(), 6)).decode("ascii")


def decode(text: str) -> Tensor:
    """The inverse of :func:`encode`."""
    dtype, shape, data = text.split(":", 2)
    array = np.frombuffer(zlib.decompress(base64.b64decode(data)), dtype=np.dtype(dtype))
    return torch.from_numpy(array.reshape(tuple(int(s) for s in shape.split("x"))).copy())
