"""Particle swarm optimization: Kennedy and Eberhart (1995), "Particle swarm optimization", Proc. ICNN,
in the constriction form of Clerc and Kennedy (2002), "The particle swarm - explosion, stability, and
convergence in a multidimensional complex space", IEEE TEC 6(1), whose coefficients are the defaults
(inertia chi = 0.7298, cognitive = social = chi * 2.05 = 1.49618), with the global-best topology.

Each particle i has a position x_i, a velocity v_i and the best position it has seen, p_i. Per
generation, with r1, r2 ~ U(0, 1) drawn per coordinate,
    v_i <- w v_i + c1 r1 (p_i - x_i) + c2 r2 (g - x_i),    x_i <- x_i + v_i,
g being the best p_i of the swarm (each coordinate of v_i clamped to [-velocity_clamp, velocity_clamp]
where that is set). Particles start at center + sigma * N(0, I) with zero velocity.

With noisy fitness (RL episodes) a particle's best is the best single evaluation it had: a lucky
episode keeps a position as p_i until something scores higher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
    velocity_clamp: float | None = None
    """v_max: every velocity coordinate is clamped to [-velocity_clamp, velocity_clamp] (Kennedy and
    Eberhart's v_max; a cap per coordinate, not on the velocity's norm as PGPE's ``max_speed``). None: no
    clamp; constriction keeps the swarm stable"""

    renamed: ClassVar[dict[str, str]] = {"max_speed": "velocity_clamp"}
    """old name -> new name: the old name is still read, with a DeprecationWarning"""


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
        if c.velocity_clamp is not None and c.velocity_clamp <= 0:
            raise ValueError(f"PSO: velocity_clamp must be positive or None, got {c.velocity_clamp}")

    def _uniform(self) -> torch.Tensor:
        return torch.rand(self.popsize, self.num_params, generator=self.generator).to(self.device)

    # ask proposes (positions, velocities) and tell commits them: the state changes in tell only, so that asking
    # twice from one state gives one population (what a restored or replicated optimizer relies on)
    def _ask(self) -> torch.Tensor:
        c = self.config
        if self.generation == 0:  # the swarm around the starting point, at rest
            noise = torch.randn(self.popsize, self.num_params, generator=self.generator).to(self.device)
            positions = self.center + c.sigma * noise
            self._proposal = (positions, torch.zeros_like(positions))
            return positions
        r1, r2 = self._uniform(), self._uniform()
        velocities = (
            c.inertia * self.velocities
            + c.cognitive * r1 * (self.personal_best - self.positions)
            + c.social * r2 * (self.center - self.positions)
        )
        if c.velocity_clamp is not None:
            velocities = velocities.clamp(-c.velocity_clamp, c.velocity_clamp)
        positions = self.positions + velocities
        self._proposal = (positions, velocities)
        return positions

    def _tell(self, params, fitness):
        self.positions, self.velocities = self._proposal
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
