"""Differential evolution: Storn and Price (1997), "Differential Evolution - A Simple and Efficient
Heuristic for Global Optimization over Continuous Spaces", J. Global Optimization 11, 341-359.

A population of P vectors x_i. Per generation every target x_i gets a trial vector: a mutant
    rand/1:            v_i = x_r1 + F (x_r2 - x_r3)
    current-to-best/1: v_i = x_i + F (x_best - x_i) + F (x_r1 - x_r2)
(r1, r2, r3 distinct and different from i), crossed over binomially with the target (each coordinate
from the mutant with probability CR, one random coordinate always), and the trial replaces its target
when its fitness is at least as high. Defaults F = 0.5, CR = 0.9 are the settings Storn and Price
recommend to start from. The first generation evaluates the population itself: center + sigma * N(0, I).

With noisy fitness (RL episodes) a member keeps the fitness of the evaluation that admitted it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroevo.algorithms.base import Optimizer, OptimizerConfig

STRATEGIES = ("rand/1/bin", "current-to-best/1/bin")


@dataclass
class DEConfig(OptimizerConfig):
    popsize: int = 64
    """population size (at least 4)"""
    sigma: float = 0.1
    """standard deviation of the first population around the starting point"""
    strategy: str = "rand/1/bin"
    """'rand/1/bin' or 'current-to-best/1/bin'"""
    differential_weight: float = 0.5
    """F: scale of the difference vectors"""
    crossover_rate: float = 0.9
    """CR: probability that a trial coordinate comes from the mutant"""


class DE(Optimizer):
    """Differential evolution, rand/1/bin or current-to-best/1/bin."""

    config_class = DEConfig
    name = "DE"
    _state_keys = ("population", "fitness")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.population = torch.empty(0, self.num_params, device=self.device)
        self.fitness = torch.empty(0, device=self.device)

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if c.popsize < 4:
            raise ValueError(f"DE: popsize must be at least 4 (a target and three others), got {c.popsize}")
        if c.strategy not in STRATEGIES:
            raise ValueError(f"DE: unknown strategy {c.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if not 0 < c.differential_weight <= 2:
            raise ValueError(f"DE: differential_weight must be in (0, 2], got {c.differential_weight}")
        if not 0 <= c.crossover_rate <= 1:
            raise ValueError(f"DE: crossover_rate must be in [0, 1], got {c.crossover_rate}")

    def _others(self, count: int) -> torch.Tensor:
        """[P, count] indices, in each row distinct from each other and from the row's own index."""
        p = self.popsize
        own = torch.arange(p)[:, None]
        picks = torch.randint(0, p, (p, count), generator=self.generator)
        while True:
            taken = torch.cat([own, picks], 1)
            clash = (taken[:, :, None] == taken[:, None, :]).triu(1).any(1)[:, 1:]  # equals an earlier one
            if not clash.any():
                return picks
            picks = torch.where(clash, torch.randint(0, p, picks.shape, generator=self.generator), picks)

    def _ask(self) -> torch.Tensor:
        c = self.config
        if self.generation == 0:  # evaluate the population itself (kept by tell: ask changes no state)
            noise = torch.randn(self.popsize, self.num_params, generator=self.generator).to(self.device)
            return self.center + c.sigma * noise
        x, f = self.population, c.differential_weight
        if c.strategy == "rand/1/bin":
            r = self._others(3).to(self.device)
            mutants = x[r[:, 0]] + f * (x[r[:, 1]] - x[r[:, 2]])
        else:
            r = self._others(2).to(self.device)
            mutants = x + f * (self.center - x) + f * (x[r[:, 0]] - x[r[:, 1]])
        cross = torch.rand(self.popsize, self.num_params, generator=self.generator) < c.crossover_rate
        forced = torch.randint(0, self.num_params, (self.popsize,), generator=self.generator)
        cross[torch.arange(self.popsize), forced] = True  # at least one coordinate from the mutant
        return torch.where(cross.to(self.device), mutants, x)

    def _tell(self, params, fitness):
        if self.fitness.shape[0] == 0:
            self.population = params[torch.arange(self.popsize)].clone()
            self.fitness = fitness.clone()
            replaced = self.popsize
        else:
            better = fitness >= self.fitness
            replaced = int(better.sum())
            self.population = torch.where(better[:, None], params[torch.arange(self.popsize)], self.population)
            self.fitness = torch.where(better, fitness, self.fitness)
        self.center = self.population[int(self.fitness.argmax())].clone()  # best member: the solution
        return {"train/replaced": float(replaced), "train/population_best_fitness": float(self.fitness.max())}
