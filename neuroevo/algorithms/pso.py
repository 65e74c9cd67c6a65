"""Particle swarm optimization: Kennedy and Eberhart (1995), "Particle swarm optimization", Proc. ICNN,
in the constriction form of Clerc and Kennedy (2002), "The particle swarm - explosion, stability, and
convergence in a multidimensional complex space", IEEE TEC 6(1), whose coefficients are the defaults
(inertia chi = 0.7298, cognitive = social = chi * 2.05 = 1.49618), with the global-best topology.

Each particle i has a position x_i, a velocity v_i and the best position it has seen, p_i. Per
generation, with r1, r2 ~ U(0, 1) drawn per coordinate,
    v_i <- w v_i + c1 r1 (p_i - x_i) + c2 r2 (g - x_i),    x_i <- x_i + v_i,
g being the best p_i of the swarm. Particles start at center + sigma * N(0, I) with zero velocity.

With noisy fitness (RL episodes) a particle's best is the best single evaluation it had: a lucky
episode keeps a position as p_i until something scores higher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroevo.algorithms.base import Optimizer, OptimizerConfig


@dataclass
class PSOConfig(OptimizerConfig):
    popsize: int = 64
    """particles"""
    sigma: float = 0.1
    """standard deviation of the particles' start positions around the starting point"""
    inertia: float = 0.7298
    """w: weight of the previous velocity (Clerc and Kennedy's constriction coefficient chi)"""
    cognitive: float = 1.49618
    """c1: pull towards the particle's own best (chi * 2.05)"""
    social: float = 1.49618
    """c2: pull towards the swarm's best (chi * 2.05)"""
    max_speed: float | None = None
    """clamp on every velocity coordinate (None: no clamp; constriction keeps the swarm stable)"""


class PSO(Optimizer):
    """Global-best particle swarm with constriction coefficients."""

    config_class = PSOConfig
    name = "PSO"
    _state_keys = ("positions", "velocities", "personal_best", "personal_best_fitness")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.positions = torch.empty(0, self.num_params, device=self.device)
        self.velocities = torch.empty(0, self.num_params, device=self.device)
        self.personal_best = torch.empty(0, self.num_params, device=self.device)
        self.personal_best_fitness = torch.empty(0, device=self.device)

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if c.inertia < 0 or c.cognitive < 0 or c.social < 0:
            raise ValueError(f"PSO: inertia, cognitive and social must be >= 0, got {c.inertia, c.cognitive, c.social}")
        if c.max_speed is not None and c.max_speed <= 0:
            raise ValueError(f"PSO: max_speed must be positive or None, got {c.max_speed}")

    def _uniform(self) -> torch.Tensor:
        return torch.rand(self.popsize, self.num_params, generator=self.generator).to(self.device)

    def _ask(self) -> torch.Tensor:
        c = self.config
        if self.positions.shape[0] == 0:  # generation 0: the swarm around the starting point, at rest
            noise = torch.randn(self.popsize, self.num_params, generator=self.generator).to(self.device)
            self.positions = self.center + c.sigma * noise
            self.velocities = torch.zeros_like(self.positions)
            return self.positions
        r1, r2 = self._uniform(), self._uniform()
        velocities = (
            c.inertia * self.velocities
            + c.cognitive * r1 * (self.personal_best - self.positions)
            + c.social * r2 * (self.center - self.positions)
        )
        if c.max_speed is not None:
            velocities = velocities.clamp(-c.max_speed, c.max_speed)
        self.velocities = velocities
        self.positions = self.positions + velocities
        return self.positions

    def _tell(self, params, fitness):
        if self.personal_best.shape[0] == 0:
            self.personal_best = self.positions.clone()
            self.personal_best_fitness = fitness.clone()
        else:
            improved = fitness > self.personal_best_fitness
            self.personal_best = torch.where(improved[:, None], self.positions, self.personal_best)
            self.personal_best_fitness = torch.where(improved, fitness, self.personal_best_fitness)
        leader = int(self.personal_best_fitness.argmax())
        self.center = self.personal_best[leader].clone()  # the swarm's best: its solution
        return {
            "train/swarm_best_fitness": float(self.personal_best_fitness[leader]),
            "train/mean_speed": float(self.velocities.norm(dim=1).mean()),
        }
