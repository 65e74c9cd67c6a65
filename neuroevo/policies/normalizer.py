"""Running observation normalizer whose statistics merge across processes.

Statistics are ``(count, mean, m2)`` with ``m2`` the sum of squared deviations from the mean, kept in
float64 so that millions of merged steps do not drift. Two sets merge with the parallel algorithm of
Chan, Golub and LeVeque (1979):

    n = n_a + n_b,   delta = mean_b - mean_a,
    mean = mean_a + delta * n_b / n,   m2 = m2_a + m2_b + delta^2 * n_a * n_b / n.

Workers compute :meth:`ObsNormalizer.batch_stats` on their own rollouts; any process folds them in with
:meth:`ObsNormalizer.merge`, and the result does not depend on how the data was split.
"""

from __future__ import annotations

import torch
from torch import Tensor

Stats = tuple[Tensor, Tensor, Tensor]  # count: [], mean: [obs_dim], m2: [obs_dim], float64


def standardize(obs: Tensor, mean: Tensor, std: Tensor, clip) -> Tensor:
    """``clamp((obs - mean) / std, -clip, clip)``: the normalization step, on resolved statistics (the
    rollout and deployed modules call it with statistics frozen on their device)."""
    return ((obs - mean) / std).clamp(-clip, clip)


class ObsNormalizer:
    """``normalize(obs) = clamp((obs - mean) / sqrt(var + eps), -clip, clip)`` with running mean / var.

    Before any data, mean is 0 and var is 1 (identity apart from the clip). ``var = m2 / count`` is the
    population variance.
    """

    def __init__(self, obs_dim: int, device=None, clip: float = 5.0, eps: float = 1e-8):
        self.obs_dim = int(obs_dim)
        self.clip = float(clip)
        self.eps = float(eps)
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.mean = torch.zeros(self.obs_dim, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(self.obs_dim, dtype=torch.float64, device=device)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @staticmethod
    def batch_stats(obs: Tensor, mask: Tensor | None = None) -> Stats:
        """Stats of one batch, on obs's device. obs: [..., obs_dim]; mask: [...] bool, True = counted.

        Returns (count: [], mean: [obs_dim], m2: [obs_dim]) in float64; masked-out rows may hold anything
        (NaN included) and do not contribute.
        """
        x = obs.reshape(-1, obs.shape[-1]).to(torch.float64)
        if mask is None:
            keep = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        else:
            if tuple(mask.shape) != tuple(obs.shape[:-1]):
                raise ValueError(
                    f"mask of shape {tuple(mask.shape)} should be {tuple(obs.shape[:-1])} for obs of shape "
                    f"{tuple(obs.shape)}"
                )
            keep = mask.reshape(-1).to(torch.bool)
        keep = keep.unsqueeze(1)
        # where() rather than multiplying by the mask, so NaN in dropped rows cannot leak in.
        count = keep.sum(dtype=torch.float64)
        mean = torch.where(keep, x, 0.0).sum(0) / count.clamp_min(1)
        m2 = torch.where(keep, (x - mean) ** 2, 0.0).sum(0)
        return count, mean, m2

    def merge(self, stats: Stats) -> None:
        """Fold ``(count, mean, m2)`` from :meth:`batch_stats` or another normalizer into these stats."""
        count_b, mean_b, m2_b = (t.to(device=self.device, dtype=torch.float64) for t in stats)
        if tuple(mean_b.shape) != (self.obs_dim,) or tuple(m2_b.shape) != (self.obs_dim,):
            raise ValueError(
                f"stats of shape mean {tuple(mean_b.shape)}, m2 {tuple(m2_b.shape)} do not fit obs_dim "
                f"{self.obs_dim}"
            )
        count = self.count + count_b
        # clamp_min keeps 0 + 0 rows at mean 0 without a host sync to test for it.
        weight_b = count_b / count.clamp_min(1)
        delta = mean_b - self.mean
        self.mean = self.mean + delta * weight_b
        self.m2 = self.m2 + m2_b + delta**2 * self.count * weight_b
        self.count = count

    def update(self, obs: Tensor, mask: Tensor | None = None) -> None:
        """``merge(batch_stats(obs, mask))``. obs: [..., obs_dim]; mask: [...] bool."""
        self.merge(self.batch_stats(obs, mask))

    def stats(self) -> Stats:
        """The running (count, mean, m2), e.g. to send to another process's :meth:`merge`."""
        return self.count, self.mean, self.m2

    @property
    def var(self) -> Tensor:
        """[obs_dim] float64; 1 before any data."""
        return torch.where(self.count > 0, self.m2 / self.count.clamp_min(1), 1.0)

    def mean_std(self, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """(mean, sqrt(var + eps)) cast to ``dtype``: exactly what :meth:`normalize` uses for that dtype."""
        return self.mean.to(dtype), torch.sqrt(self.var + self.eps).to(dtype)

    def normalize(self, obs: Tensor) -> Tensor:
        """obs: [..., obs_dim] floating -> same shape and dtype, centred, scaled and clipped."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs of shape {tuple(obs.shape)} should end in obs_dim = {self.obs_dim}")
        mean, std = self.mean_std(obs.dtype)
        return standardize(obs, mean.to(obs.device), std.to(obs.device), self.clip)

    def state_dict(self) -> dict[str, Tensor]:
        """Plain tensors (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "count": self.count.clone(),
            "mean": self.mean.clone(),
            "m2": self.m2.clone(),
            "clip": torch.tensor(self.clip, dtype=torch.float64),
            "eps": torch.tensor(self.eps, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if tuple(state["mean"].shape) != (self.obs_dim,):
            raise ValueError(
                f"normalizer state for obs_dim {state['mean'].shape[0]} does not fit obs_dim {self.obs_dim}"
            )
        device, dtype = self.device, torch.float64
        self.count = state["count"].to(device=device, dtype=dtype).reshape(()).clone()
        self.mean = state["mean"].to(device=device, dtype=dtype).clone()
        self.m2 = state["m2"].to(device=device, dtype=dtype).clone()
        self.clip = float(state.get("clip", self.clip))
        self.eps = float(state.get("eps", self.eps))

    def to(self, device) -> ObsNormalizer:
        """Move the statistics to ``device``; returns self."""
        self.count, self.mean, self.m2 = (t.to(device) for t in (self.count, self.mean, self.m2))
        return self

    def __repr__(self) -> str:
        args = f"obs_dim={self.obs_dim}, clip={self.clip}, eps={self.eps}, device={self.device}"
        return f"ObsNormalizer({args})"
