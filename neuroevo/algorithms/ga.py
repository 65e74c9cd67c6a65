"""The Deep Neuroevolution GA: Such, Madhavan, Conti, Lehman, Stanley, Clune (2017), "Deep
Neuroevolution: Genetic Algorithms Are a Competitive Alternative for Training Deep Neural Networks
for Reinforcement Learning", arXiv:1712.06567, Algorithm 1.

Each generation, truncation selection keeps the top T members (``truncation``) as parents; every new
member is a uniformly chosen parent plus Gaussian mutation, child = parent + sigma * eps, eps from the
shared noise table (so a child is named by (parent, offset)). No crossover.

Generation 0 is ``init``: ``"center"`` (default), the starting point itself and mutants of it; ``"random"``
(the paper's, the Atari cards'), popsize independent random networks, each a draw from the policy's own init
distribution named by one noise offset (the paper's first seed, tau_0).

Genomes are compact, as in the paper: every member the GA keeps (elites, parents, candidates, the center and the
best member seen) is stored as its lineage, the list of (noise offset, sigma) of the mutations that made it from
the starting point, and its parameters are rebuilt from that on demand (:class:`Lineages`). A checkpoint's
optimizer part (``compact_state_dict()``) is O(members x generations) numbers and no D-vector, whatever the
population or the network; the full state, a Ray worker's sync, adds the starting point and the init scale
(and the center and best as rows), which let a replica be built from the state alone.

Two rules choose the elite, the member carried unmutated and returned as the solution, because one noisy
episode over-rates lucky members:

- ``elite_episodes = 0`` (default): the top ``num_elites`` members are carried unmutated into the next
  generation, where they are evaluated again with fresh episodes; a carried member's fitness is the mean over
  all its evaluations so far. The elite is the carried member with the best such mean.
- ``elite_episodes = E > 0`` (the paper's rule; the Atari cards' default): the top ``num_elites`` members
  (the paper's 10 candidates) are each evaluated on E more episodes (the paper's 30), as E copies of each
  appended to the next generation's population (so ``len(ask())`` is popsize + num_elites x E); the candidate
  with the best mean becomes the elite and joins the generation after that, unmutated, as its first member.
  One difference from the paper's timeline: the validation runs alongside the next generation instead of
  between the two, so the elite enters one generation later; the episodes spent are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from neuroevo.algorithms.lineages import Lineages, RandomStartsOptimizer
from neuroevo.algorithms.population import NoiseTableConfig, Population


@dataclass
class GAConfig(NoiseTableConfig):
    popsize: int = 256
    """members per generation, elites included (the elite-validation copies of ``elite_episodes`` come on top)"""
    sigma: float = 0.002
    """mutation power: standard deviation of the Gaussian mutation (the paper's 0.002 for Atari)"""
    truncation: int = 20
    """T: the top members that become parents"""
    num_elites: int = 10
    """top members that compete for the elite: carried and re-evaluated each generation (``elite_episodes``
    0), or evaluated on ``elite_episodes`` extra episodes each (the paper's 10 candidates)"""
    elite_episodes: int = 0
    """0: elites are carried and re-evaluated with fresh episodes every generation; E > 0: the paper's rule,
    each of the top ``num_elites`` evaluated on E extra episodes (the paper's 30) and the best carried"""
    init: str = "center"
    """generation 0: "center", the starting point and its mutants; "random", popsize random networks drawn from
    the policy's init distribution (the paper's; needs ``init_scale``, see ``RandomStartsOptimizer``)"""


class GA(RandomStartsOptimizer):
    """Truncation-selection GA with Gaussian mutation, compact genomes and re-evaluated elites.

    The population is never stored: it is the carried elites followed by children named by (parent index,
    noise offset) into the parents, drawn in ``ask`` from the generation's own random stream
    (:class:`~neuroevo.algorithms.population.Population`); with ``elite_episodes`` the candidates' validation
    copies follow. The rows of elites, parents and candidates are kept in memory for speed, and rebuilt from
    their lineages after a ``load_state_dict``.
    """

    config_class = GAConfig
    name = "GA"
    _state_keys = ("root", "init_scale", "elite_sum", "elite_count")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        # Generation 0 (init "center"): the starting point itself, and mutants of it. It is not a re-evaluated
        # elite (elite_count is empty until generation 0 is told). init "random": random starting points.
        self.elites, self.parents, self.candidates = Lineages.roots(1), Lineages.roots(1), Lineages.roots(1)
        self._cache_rows()
        self.elite_sum = torch.zeros(0, device=self.device)
        self.elite_count = torch.zeros(0, device=self.device)
        self._asked: tuple[Population, Lineages, int] | None = None  # and how many candidates it validates

    def _validate_config(self):
        super()._validate_config()
        c = self.config
        if not 1 <= c.truncation <= c.popsize:
            raise ValueError(f"GA: truncation must be in [1, popsize={c.popsize}], got {c.truncation}")
        if not 0 <= c.num_elites < c.popsize:
            raise ValueError(f"GA: num_elites must be in [0, popsize={c.popsize}), got {c.num_elites}")
        if c.elite_episodes < 0:
            raise ValueError(f"GA: elite_episodes must be 0 (re-evaluated elites) or more, got {c.elite_episodes}")
        if c.elite_episodes and not c.num_elites:
            raise ValueError("GA: elite_episodes needs num_elites >= 1 candidates to evaluate")

    @property
    def popsize(self) -> int:
        """Members per ``ask``: ``popsize``, plus num_elites x elite_episodes validation copies."""
        c = self.config
        return c.popsize + (c.num_elites * c.elite_episodes if c.elite_episodes else 0)

    def _cache_rows(self) -> None:
        self.elite_params = self.elites.rows(self.root, self.noise, self.init_scale)
        self.parent_params = self.parents.rows(self.root, self.noise, self.init_scale)
        self.candidate_params = self.candidates.rows(self.root, self.noise, self.init_scale)

    def _ask(self):
        c = self.config
        if self.init_scale is not None and self.generation == 0:
            return self._ask_random_starts()
        carried = len(self.elites)
        n_children = c.popsize - carried
        parents = torch.randint(0, len(self.parents), (n_children,), generator=self.generator)
        offsets = self.noise.sample_offsets(n_children, self.num_params, self.generator)
        # Bases: the elites, carried unmutated (sign 0), the parents the children mutate, then the candidates
        # (validation copies, unmutated; none under the re-evaluation rule)
        copies = self.popsize - c.popsize
        candidate_index = torch.arange(copies) // max(c.elite_episodes, 1) % len(self.candidates)
        bases = [self.elite_params, self.parent_params] + ([self.candidate_params] if copies else [])
        lineages = [self.elites, self.parents] + ([self.candidates] if copies else [])
        first_candidate = carried + len(self.parents)
        unmutated = torch.zeros(carried, dtype=torch.int64)
        population = self._population(
            torch.cat(bases),
            torch.cat([torch.arange(carried), carried + parents, first_candidate + candidate_index]),
            torch.cat([unmutated, offsets, torch.zeros(copies, dtype=torch.int64)]),
            torch.cat([unmutated, torch.ones(n_children, dtype=torch.int64), torch.zeros(copies, dtype=torch.int64)]),
        )
        padded = _padded(lineages)
        self._asked = (population, Lineages(torch.cat([x.offsets for x in padded]),
                                            torch.cat([x.sigmas for x in padded]),
                                            torch.cat([x.starts for x in padded])), len(self.candidates))
        return population

    def _ask_random_starts(self) -> Population:
        """Generation 0 of init "random": popsize random starting points, then (``elite_episodes``) the
        validation copies of the first ``num_elites`` of them, as no candidates exist yet."""
        c = self.config
        population = self._random_starts(self.root, c.popsize)
        copies = self.popsize - c.popsize
        candidates = min(c.num_elites, c.popsize) if copies else 0
        index = torch.cat([torch.arange(c.popsize), torch.arange(copies) // max(c.elite_episodes, 1)])
        population.offsets = population.offsets[index]
        population.base_index = torch.zeros(len(index), dtype=torch.int64)
        population.signs = torch.ones(len(index), dtype=torch.int8)
        self._asked = (population, Lineages.roots(1), candidates)
        return population

    def _tell(self, params, fitness):
        c = self.config
        if self._asked is None:
            raise RuntimeError("GA.tell() called without a preceding ask()")
        population, base_lineages, candidates = self._asked
        self._asked = None
        members = c.popsize  # elites and children; validation copies after them
        carried = self.elite_count.numel()
        total = fitness[:members].clone()
        count = torch.ones_like(total)
        total[:carried] += self.elite_sum
        count[:carried] += self.elite_count
        mean = total / count  # re-evaluated elites: mean over all their evaluations
        order = mean.argsort(descending=True)
        top = order[: c.num_elites]

        def lineage(index: torch.Tensor) -> Lineages:
            return Lineages.of_members(population, index.cpu(), base_lineages)

        metrics: dict[str, float] = {}
        if c.elite_episodes:
            validation = fitness[members:].reshape(c.num_elites, c.elite_episodes).mean(1)
            best = int(validation[:candidates].argmax())
            elite_member = members + best * c.elite_episodes  # the first validation copy of the best candidate
            self.elites = lineage(torch.tensor([elite_member]))
            self.elite_params = params[[elite_member]].clone()
            self.center, self.center_lineage = self.elite_params[0].clone(), self.elites
            self.candidates = lineage(top)
            self.candidate_params = params[top].clone()
            metrics = {"train/elite_fitness": float(validation[best]),
                       "train/elite_evaluations": float(c.elite_episodes)}
        else:
            elite = int(mean[:carried].argmax()) if carried else int(order[0])
            self.center, self.center_lineage = params[elite].clone(), lineage(torch.tensor([elite]))
            self.elites = lineage(top)
            self.elite_params = params[top].clone()
            self.elite_sum = total[top]
            self.elite_count = count[top]
            metrics = {"train/elite_fitness": float(mean[elite]), "train/elite_evaluations": float(count[elite])}
        self.parents = lineage(order[: c.truncation])
        self.parent_params = params[order[: c.truncation]].clone()
        return metrics

    def _lineage_of(self, index: int) -> Lineages:
        assert self._asked is not None
        population, bases, _ = self._asked
        return Lineages.of_members(population, torch.tensor([index]), bases)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(elites=self.elites.state(), parents=self.parents.state(), candidates=self.candidates.state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("elites", "parents", "candidates"):
            if state.get("name") == self.name and not isinstance(state.get(key), dict | torch.Tensor):
                raise ValueError(f"GA state has no lineage {key!r}: written by an older neuroevo, which stored the "
                                 "elites as parameter rows; continue that run with the neuroevo that wrote it")
        super().load_state_dict(state)
        self.elites = Lineages.from_state(state["elites"])
        self.parents = Lineages.from_state(state["parents"])
        self.candidates = Lineages.from_state(state["candidates"])
        self._asked = None
        self._cache_rows()


def _padded(lineages: list[Lineages]) -> list[Lineages]:
    """The lineages padded (offset -1) to one length, so that they stack."""
    length = max(x.offsets.shape[1] for x in lineages)
    out = []
    for x in lineages:
        pad = length - x.offsets.shape[1]
        out.append(Lineages(torch.nn.functional.pad(x.offsets, (0, pad), value=-1),
                            torch.nn.functional.pad(x.sigmas, (0, pad), value=0.0), x.starts))
    return out
