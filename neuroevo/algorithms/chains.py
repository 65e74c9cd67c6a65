"""Population-parallel local search: P independent chains stepped together, one proposal per chain
per generation, proposal = chain + sigma * eps with eps from the shared noise table (so a proposal is
named by (chain, offset), as a GA child by (parent, offset)). The chains differ only in what they accept.

- :class:`SimulatedAnnealing`: Kirkpatrick, Gelatt and Vecchi (1983), "Optimization by Simulated
  Annealing", Science 220, 671-680, run as P parallel Markov chains. Metropolis acceptance: a proposal
  with fitness f' replaces the chain's state (fitness f) when f' >= f, else with probability
  exp((f' - f) / T). Geometric cooling as in Kirkpatrick et al.: T is multiplied by ``cooling`` (their
  0.9) after every ``steps_per_temperature`` proposals per chain. The start temperature defaults to
  White (1984), "Concepts of scale in simulated annealing", AIP Conf. Proc. 122: the standard deviation
  of the fitness over random starting states, here the first generation.
- :class:`HillClimbing`: random-restart stochastic hill climbing (Russell and Norvig, "Artificial
  Intelligence: A Modern Approach", section 4.1): a proposal is accepted when it is at least as good;
  a chain that has not improved for ``patience`` generations restarts from a new random point around
  the starting point. Its solution is the best state any climb reached (the base's ``best``).

Generation 0 evaluates the chains' random starting states, center + init_sigma * N(0, I). The solution
(``center``) of simulated annealing is the state of the chain with the best current fitness. With noisy
fitness (RL episodes) a chain's fitness is the evaluation that admitted its state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuroevo.algorithms.population import NoiseTableConfig, NoiseTableOptimizer, Population


@dataclass
class ChainsConfig(NoiseTableConfig):
    popsize: int = 64
    """chains, each proposing one move per generation"""
    sigma: float = 0.02
    """standard deviation of a proposal around the chain's state"""
    init_sigma: float = 0.1
    """standard deviation of the random starting (and restart) states around the starting point"""


@dataclass
class SAConfig(ChainsConfig):
    t0: float | None = None
    """start temperature in fitness units (None: the std of the first generation's fitness, after White)"""
    cooling: float = 0.9
    """T <- cooling * T every steps_per_temperature generations (Kirkpatrick et al.'s 0.9)"""
    steps_per_temperature: int = 10
    """proposals per chain at each temperature"""


@dataclass
class HillClimbingConfig(ChainsConfig):
    patience: int = 20
    """generations without improvement after which a chain restarts"""


class _Chains(NoiseTableOptimizer):
    """P chains [P, D] with their fitness [P]; subclasses implement ``_accept``."""

    _state_keys: tuple[str, ...] = ("start", "chains", "chain_fitness")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.start = self.center.clone()
        self.chains = torch.empty(0, self.num_params, device=self.device)
        self.chain_fitness = torch.empty(0, device=self.device)

    def _validate_config(self) -> None:
        super()._validate_config()
        if self.config.init_sigma <= 0:
            raise ValueError(f"{self.name}: init_sigma must be positive, got {self.config.init_sigma}")

    def _random_states(self, n: int) -> torch.Tensor:
        noise = torch.randn(n, self.num_params, generator=self.generator).to(self.device)
        return self.start + self.config.init_sigma * noise

    def _ask(self) -> Population | torch.Tensor:
        if self.generation == 0:  # the random starting states (kept by tell: ask changes no state)
            return self._random_states(self.popsize)
        offsets = self.noise.sample_offsets(self.popsize, self.num_params, self.generator)
        return self._population(self.chains, torch.arange(self.popsize), offsets, torch.ones(self.popsize))

    def _tell(self, params, fitness):
        if self.chain_fitness.shape[0] == 0:
            self.chains = params[torch.arange(self.popsize)].clone()
            self.chain_fitness = fitness.clone()
            metrics = self._started(fitness)
        else:
            accept, metrics = self._accept(fitness)
            rows = torch.arange(self.popsize)[accept.cpu()]
            self.chains[rows.to(self.device)] = params[rows]
            self.chain_fitness = torch.where(accept, fitness, self.chain_fitness)
            metrics["train/accepted"] = float(accept.float().mean())
        self.center = self.chains[int(self.chain_fitness.argmax())].clone()
        return metrics

    def _started(self, fitness: torch.Tensor) -> dict[str, float]:
        """Hook after the starting states are evaluated."""
        return {}

    def _accept(self, fitness: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(accept [P] bool, metrics) for the proposals' ``fitness`` [P] against ``chain_fitness``."""
        raise NotImplementedError


class SimulatedAnnealing(_Chains):
    """Simulated annealing as P parallel chains with Metropolis acceptance and geometric cooling."""

    config_class = SAConfig
    name = "SA"
    _state_keys = (*_Chains._state_keys, "t_start")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.t_start = float(self.config.t0) if self.config.t0 is not None else float("nan")

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if c.t0 is not None and c.t0 <= 0:
            raise ValueError(f"SA: t0 must be positive or None, got {c.t0}")
        if not 0 < c.cooling <= 1:
            raise ValueError(f"SA: cooling must be in (0, 1], got {c.cooling}")
        if c.steps_per_temperature < 1:
            raise ValueError(f"SA: steps_per_temperature must be at least 1, got {c.steps_per_temperature}")

    @property
    def temperature(self) -> float:
        """T of the current generation's proposals."""
        stage = max(self.generation - 1, 0) // self.config.steps_per_temperature
        return self.t_start * self.config.cooling**stage

    def _started(self, fitness):
        if math.isnan(self.t_start):
            spread = float(fitness.std()) if fitness.numel() > 1 else 0.0
            self.t_start = spread if spread > 0 else 1.0  # all starts equal: no scale to read, use 1
        return {"train/temperature": self.t_start}

    def _accept(self, fitness):
        t = self.temperature
        u = torch.rand(self.popsize, generator=self.generator).to(self.device)
        gain = fitness - self.chain_fitness
        accept = (gain >= 0) | (u < torch.exp((gain / t).clamp(max=0.0)))
        return accept, {"train/temperature": t}


class HillClimbing(_Chains):
    """Random-restart stochastic hill climbing over P parallel chains."""

    config_class = HillClimbingConfig
    name = "HillClimbing"
    _state_keys = (*_Chains._state_keys, "stale")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        self.stale = torch.zeros(0, dtype=torch.int64, device=self.device)

    def _validate_config(self) -> None:
        super()._validate_config()
        if self.config.patience < 1:
            raise ValueError(f"HillClimbing: patience must be at least 1, got {self.config.patience}")

    def _started(self, fitness):
        self.stale = torch.zeros(self.popsize, dtype=torch.int64, device=self.device)
        return {}

    def _accept(self, fitness):
        accept = fitness >= self.chain_fitness
        improved = fitness > self.chain_fitness
        self.stale = torch.where(improved, 0, self.stale + 1)
        restart = self.stale >= self.config.patience
        if bool(restart.any()):
            # A restarted chain forgets its fitness: its next proposal (around the new state) is accepted.
            rows = restart.nonzero().flatten()
            self.chains[rows] = self._random_states(len(rows))
            self.chain_fitness = torch.where(restart, float("-inf"), self.chain_fitness)
            self.stale = torch.where(restart, 0, self.stale)
            accept = accept & ~restart
        return accept, {"train/restarts": float(restart.sum())}

    def _tell(self, params, fitness):
        metrics = super()._tell(params, fitness)
        self.center = self.best.clone()  # a restart must not lose the best local optimum found
        return metrics
