"""The Deep Neuroevolution GA: Such, Madhavan, Conti, Lehman, Stanley, Clune (2017), "Deep
Neuroevolution: Genetic Algorithms Are a Competitive Alternative for Training Deep Neural Networks
for Reinforcement Learning", arXiv:1712.06567, Algorithm 1.

Each generation, truncation selection keeps the top T members (``truncation``) as parents; every new
member is a uniformly chosen parent plus Gaussian mutation, child = parent + sigma * eps, eps from the
shared noise table (so a child is named by (parent, offset)). No crossover.

Elitism with re-evaluation: the paper re-evaluates its top candidates on extra episodes to pick the
elite, because one noisy episode over-rates lucky members. Here the top ``num_elites`` members are
carried unmutated into the next generation, where they are evaluated again with fresh episodes; a
carried member's fitness is the mean over all its evaluations so far. The elite (``center``) is the
carried member with the best such mean, and it is what the GA returns as its solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroevo.algorithms.population import NoiseTableConfig, NoiseTableOptimizer


@dataclass
class GAConfig(NoiseTableConfig):
    popsize: int = 256
    """members per generation, elites included"""
    sigma: float = 0.002
    """mutation power: standard deviation of the Gaussian mutation (the paper's 0.002 for Atari)"""
    truncation: int = 20
    """T: the top members that become parents"""
    num_elites: int = 10
    """top members carried unmutated and re-evaluated each generation (the paper's 10 candidates)"""


class GA(NoiseTableOptimizer):
    """Truncation-selection GA with Gaussian mutation and re-evaluated elites.

    The population is never stored: it is the elites [C, D] followed by children named by
    (parent index, noise offset) into the parents [T, D], drawn in ``ask`` from the generation's own
    random stream (:class:`~neuroevo.algorithms.base.Population`). A checkpoint carries (C + T) x D floats,
    not P x D.
    """

    config_class = GAConfig
    name = "GA"
    _state_keys = ("elites", "parent_params", "elite_sum", "elite_count")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        # Generation 0: the starting point itself, and mutants of it. It is not a re-evaluated elite
        # (elite_count is empty until generation 0 is told).
        self.elites = self.center[None].clone()
        self.parent_params = self.center[None].clone()
        self.elite_sum = torch.zeros(0, device=self.device)
        self.elite_count = torch.zeros(0, device=self.device)
        self.parents = torch.empty(0, dtype=torch.int64)
        self.offsets = torch.empty(0, dtype=torch.int64)

    def _validate_config(self):
        super()._validate_config()
        c = self.config
        if not 1 <= c.truncation <= c.popsize:
            raise ValueError(f"GA: truncation must be in [1, popsize={c.popsize}], got {c.truncation}")
        if not 0 <= c.num_elites < c.popsize:
            raise ValueError(f"GA: num_elites must be in [0, popsize={c.popsize}), got {c.num_elites}")

    def _ask(self):
        carried = self.elites.shape[0]
        n_children = self.popsize - carried
        self.parents = torch.randint(0, self.parent_params.shape[0], (n_children,), generator=self.generator)
        self.offsets = self.noise.sample_offsets(n_children, self.num_params, self.generator)
        # Bases: the elites, carried unmutated (sign 0), then the parents the children mutate.
        zeros = torch.zeros(carried, dtype=torch.int64)
        return self._population(
            torch.cat([self.elites, self.parent_params]),
            torch.cat([torch.arange(carried), carried + self.parents]),
            torch.cat([zeros, self.offsets]),
            torch.cat([zeros, torch.ones(n_children, dtype=torch.int64)]),
        )

    def _tell(self, params, fitness):
        c = self.config
        carried = self.elite_count.numel()
        total = fitness.clone()
        count = torch.ones_like(fitness)
        total[:carried] += self.elite_sum
        count[:carried] += self.elite_count
        mean = total / count  # re-evaluated elites: mean over all their evaluations

        order = mean.argsort(descending=True)
        elite = int(mean[:carried].argmax()) if carried else int(order[0])
        self.center = params[elite].clone()
        top = order[: c.num_elites]
        self.elites = params[top].clone()
        self.elite_sum = total[top]
        self.elite_count = count[top]
        self.parent_params = params[order[: c.truncation]].clone()
        return {"train/elite_fitness": float(mean[elite]), "train/elite_evaluations": float(count[elite])}
