"""One member as a self-contained ``nn.Module``: normalizer, network and action head, nothing else."""

# The buffers are registered only when in use and tested for with hasattr (static under torch.jit.script), so
# they cannot be declared as Tensor attributes; to mypy they read as nn.Module's Tensor | Module.
# mypy: disable-error-code="arg-type"

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from neuroevo.policies.base import Policy
from neuroevo.policies.head import apply_head, box_bounds, check_fits
from neuroevo.policies.normalizer import ObsNormalizer, standardize


class DeployedPolicy(nn.Module):
    """``obs -> clamp((obs - obs_mean) / obs_std, -obs_clip, obs_clip) -> net -> head -> actions``.

    forward: obs [B, obs_dim] (any dtype; cast to the params' dtype) -> [B] int64 (Discrete) or
    [B, *shape] (Box); obs [obs_dim] -> [] or [*shape].

    Everything it needs is a submodule or a buffer, so ``state_dict`` / ``torch.jit.script`` /
    ``torch.export`` carry it whole. Without a normalizer the buffers obs_mean / obs_std / obs_clip are
    absent and the step is skipped; a Discrete head has buffer action_start, a Box head action_low /
    action_high. Build it with :meth:`build`.

    Its actions are those of ``normalizer.normalize -> policy(...) -> to_env_action`` for that member, up
    to the rounding of ``nn.Linear``'s matmul against the batched ``baddbmm`` (last bits of float32): Box
    actions agree to ~1e-6 and Discrete argmaxes agree except at near-ties.
    """

    def __init__(
        self,
        net: nn.Module,
        obs_dim: int,
        action_space: gym.Space,
        normalizer: ObsNormalizer | None = None,
        device=None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.net = net
        self.obs_dim = int(obs_dim)
        self.obs_dtype = dtype
        # Only the buffers in use are registered: forward() tests for them with hasattr (static under
        # torch.jit.script), and a state_dict from a differently built module fails to load strictly.
        if normalizer is not None:
            # The same casts normalize() makes for obs of this dtype, so the numbers match exactly.
            mean, std = normalizer.mean_std(dtype)
            self.register_buffer("obs_mean", mean.to(device))
            self.register_buffer("obs_std", std.to(device))
            self.register_buffer("obs_clip", torch.tensor(normalizer.clip, device=device, dtype=dtype))
        if isinstance(action_space, gym.spaces.Discrete):
            start = torch.tensor(int(action_space.start), device=device, dtype=torch.int64)
            self.register_buffer("action_start", start)
        else:
            low, high = box_bounds(action_space, device=device, dtype=dtype)  # a Box: check_fits passed
            self.register_buffer("action_low", low)
            self.register_buffer("action_high", high)

    @classmethod
    def build(
        cls,
        policy: Policy,
        params: Tensor,
        action_space: gym.Space,
        normalizer: ObsNormalizer | None = None,
    ) -> DeployedPolicy:
        """Deploy one member. params: [D]; the module lives on params' device in params' dtype."""
        check_fits(policy, action_space)
        if normalizer is not None and normalizer.obs_dim != policy.obs_dim:
            raise ValueError(
                f"normalizer for obs_dim {normalizer.obs_dim} does not fit policy obs_dim {policy.obs_dim}"
            )
        net = policy.to_module(params.detach()).requires_grad_(False)  # inference only: no autograd graph
        return cls(net, policy.obs_dim, action_space, normalizer, device=params.device, dtype=params.dtype)

    def forward(self, obs: Tensor) -> Tensor:
        unbatched = obs.dim() == 1
        # Raw env observations are often float64; the network's weights are in obs_dtype.
        x = (obs.unsqueeze(0) if unbatched else obs).to(self.obs_dtype)
        if hasattr(self, "obs_mean"):
            x = standardize(x, self.obs_mean, self.obs_std, self.obs_clip)
        raw = self.net(x)
        if hasattr(self, "action_start"):
            actions = apply_head(raw, self.action_start)
        else:  # the bounds carry the Box's shape: [B, prod(shape)] -> [B, *shape]
            actions = apply_head(raw, None, self.action_low, self.action_high)
        return actions.squeeze(0) if unbatched else actions

    def extra_repr(self) -> str:
        if hasattr(self, "action_start"):
            head = f"argmax + {int(self.action_start)}"
        else:
            head = f"clamp to Box{tuple(self.action_low.shape)}"
        return f"obs_dim={self.obs_dim}, normalize={hasattr(self, 'obs_mean')}, head={head}"
