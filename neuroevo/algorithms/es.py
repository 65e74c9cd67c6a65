"""OpenAI-ES: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning", arXiv:1703.03864.

Antithetic sampling (section 2.2, "mirrored sampling"): for i < P/2,
    params_i = center + sigma * eps_i,   params_{i+P/2} = center - sigma * eps_i,
eps_i drawn from the shared noise table. Fitness shaping by centered ranks u in [-0.5, 0.5], then the
search gradient (Algorithm 2)
    g = 1 / (P * sigma) * sum_i (u_i - u_{i+P/2}) * eps_i
and an ascent step on g - weight_decay * center with Adam (the paper's choice) or SGD with momentum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroevo.algorithms.base import centered_ranks
from neuroevo.algorithms.population import MirroredOptimizer, NoiseTableConfig


@dataclass
class ESConfig(NoiseTableConfig):
    popsize: int = 256
    """members per generation (even: P/2 antithetic pairs)"""
    lr: float = 0.01
    """step size of the Adam or SGD update"""
    optimizer: str = "adam"
    """'adam' or 'sgd' (SGD with momentum)"""
    momentum: float = 0.9
    """SGD momentum"""
    beta1: float = 0.9
    """Adam's decay of the gradient's running mean (Kingma and Ba 2015)"""
    beta2: float = 0.999
    """Adam's decay of the squared gradient's running mean"""
    weight_decay: float = 0.005
    """L2 coefficient: the step follows g - weight_decay * center (the paper's 0.005)"""


class ES(MirroredOptimizer):
    """OpenAI-ES with antithetic sampling, centered ranks, Adam or SGD, weight decay."""

    config_class = ESConfig
    name = "ES"
    _state_keys = ("m", "v", "steps")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.m = torch.zeros_like(self.center)
        self.v = torch.zeros_like(self.center)
        self.steps = 0

    def _validate_config(self):
        super()._validate_config()
        if self.config.optimizer not in ("adam", "sgd"):
            raise ValueError(f"ES: optimizer must be 'adam' or 'sgd', got {self.config.optimizer!r}")

    def _tell(self, params, fitness):
        c = self.config
        half = self.popsize // 2
        ranks = centered_ranks(fitness)
        grad = self._weighted_noise(ranks[:half] - ranks[half:]) / (self.popsize * c.sigma)
        update = self._step(grad - c.weight_decay * self.center)
        self.center = self.center + update
        return {
            "train/grad_norm": float(grad.norm()),
            "train/update_ratio": float(update.norm() / self.center.norm().clamp_min(1e-12)),
        }

    def _weighted_noise(self, weights: torch.Tensor) -> torch.Tensor:
        """``sum_i weights[i] * eps_i`` over the P/2 perturbations of this generation: [D]."""
        return weights @ self.noise.get(self.offsets, self.num_params)

    def _step(self, grad: torch.Tensor) -> torch.Tensor:
        """The ascent step for ``grad`` [D]."""
        c = self.config
        self.steps += 1
        if c.optimizer == "sgd":
            self.v = c.momentum * self.v + (1.0 - c.momentum) * grad
            return c.lr * self.v
        self.m = c.beta1 * self.m + (1.0 - c.beta1) * grad
        self.v = c.beta2 * self.v + (1.0 - c.beta2) * grad * grad
        a = c.lr * (1.0 - c.beta2**self.steps) ** 0.5 / (1.0 - c.beta1**self.steps)
        return a * self.m / (self.v.sqrt() + 1e-8)
