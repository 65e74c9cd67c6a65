"""Augmented Random Search: Mania, Guy, Recht (2018), "Simple random search provides a competitive
approach to reinforcement learning", arXiv:1803.07055, Algorithm 1.

N = P/2 directions delta_k from the shared noise table; members center + sigma*delta_k and
center - sigma*delta_k (the paper's noise nu is ``sigma``, its step size alpha is ``lr``). With r+ and
r- their returns, keep the b = ``top_directions`` directions with the largest max(r+, r-) (V1-t/V2-t;
b = N gives V1/V2), and step
    center += lr / (b * sigma_R) * sum_top (r+_k - r-_k) * delta_k,
sigma_R the standard deviation of the 2b returns used. V2 differs from V1 by state normalization,
which lives in the policy's input path (the trainer's ``normalize_obs``), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroevo.algorithms.population import MirroredOptimizer, NoiseTableConfig


@dataclass
class ARSConfig(NoiseTableConfig):
    popsize: int = 16
    """members per generation: 2N for N directions, each evaluated at +sigma and -sigma"""
    sigma: float = 0.03
    """exploration noise (the paper's nu)"""
    lr: float = 0.02
    """step size (the paper's alpha)"""
    top_directions: int | None = None
    """b: directions used per update, ranked by max(r+, r-); None uses all N (V1/V2)"""


class ARS(MirroredOptimizer):
    """ARS V1/V2 and their top-b variants V1-t/V2-t."""

    config_class = ARSConfig
    name = "ARS"

    @property
    def num_directions(self) -> int:
        return self.popsize // 2

    def _validate_config(self):
        super()._validate_config()
        c = self.config
        if c.top_directions is not None and not 1 <= c.top_directions <= c.popsize // 2:
            raise ValueError(
                f"ARS: top_directions must be in [1, {c.popsize // 2}] for popsize {c.popsize}, "
                f"got {c.top_directions}"
            )

    def _tell(self, params, fitness):
        n = self.num_directions
        b = self.config.top_directions or n
        r_plus, r_minus = fitness[:n], fitness[n:]
        top = torch.maximum(r_plus, r_minus).topk(b).indices
        used = torch.cat([r_plus[top], r_minus[top]])
        sigma_r = float(used.std(unbiased=False))
        delta = self.noise.get(self.offsets[top.cpu()], self.num_params)
        if sigma_r > 0:  # all-equal returns carry no direction information
            step = (r_plus[top] - r_minus[top]) @ delta * (self.config.lr / (b * sigma_r))
            self.center = self.center + step
        return {"train/return_std": sigma_r}
