"""The Deep Neuroevolution GA: Such, Madhavan, Conti, Lehman, Stanley, Clune (2017), "Deep
Neuroevolution: Genetic Algorithms Are a Competitive Alternative for Training Deep Neural Networks
for Reinforcement Learning", arXiv:1712.06567, Algorithm 1.

Each generation, truncation selection keeps the top T members (``truncation``) as parents; every new
member is a uniformly chosen parent plus Gaussian mutation, child = parent + sigma * eps, eps from the
shared noise table (so a child is named by (parent, offset)). No crossover.

Generation 0 is ``init``: ``"center"`` (default), the starting point itself and mutants of it; ``"random"``
(the paper's, the Atari cards'), popsize independent random networks, each a draw from the policy's own init
distribution named by one noise offset (the paper's first seed, tau_0).

Genomes are compact, as in the paper: every member the GA keeps (elites, parents, candidates) is stored as its
lineage, the list of (noise offset, sigma) of the mutations that made it from the starting point, and its
parameters are rebuilt from that on demand (:class:`Lineages`). The state (a checkpoint's optimizer part, a Ray
worker's full sync) holds three D-vectors whatever the population (the starting point, the center and the best
member seen) and a fourth with ``init = "random"`` (the init scale); the elites, parents and candidates are
O(members x generations) numbers, not (elites + parents) x D floats.

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

from neuroevo.algorithms.noise import NoiseTable
from neuroevo.algorithms.population import NoiseTableConfig, Population, RandomStartsOptimizer


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


@dataclass
class Lineages:
    """Members named by the mutations that made them: row b is ``root + s_0 eps_0 + s_1 eps_1 + ...`` over the
    (offset, sigma) pairs of ``offsets[b]`` / ``sigmas[b]`` (padded with offset -1), added in that order, which
    rebuilds exactly the floats the GA computed generation by generation. A member that descends from a random
    starting point (``init = "random"``) starts from ``root + init_scale * eps_start`` instead, its offset in
    ``starts[b]`` (-1: the root itself).

    offsets: [B, L] int64; sigmas: [B, L] float64 (each mutation's sigma as the Python float it was);
    starts: [B] int64.
    """

    offsets: torch.Tensor
    sigmas: torch.Tensor
    starts: torch.Tensor = None  # type: ignore[assignment]  # None: every member starts from the root

    def __post_init__(self) -> None:
        if self.starts is None:
            self.starts = torch.full((self.offsets.shape[0],), -1, dtype=torch.int64)

    @classmethod
    def roots(cls, n: int) -> Lineages:
        """``n`` members that are the starting point itself."""
        return cls(torch.zeros(n, 0, dtype=torch.int64), torch.zeros(n, 0, dtype=torch.float64))

    def __len__(self) -> int:
        return self.offsets.shape[0]

    def select(self, index: torch.Tensor) -> Lineages:
        return Lineages(self.offsets[index], self.sigmas[index], self.starts[index])

    @classmethod
    def of_members(cls, population: Population, index: torch.Tensor, bases: Lineages) -> Lineages:
        """The lineages of members ``index`` of ``population``, whose base rows have lineages ``bases``: the
        base's, plus the member's own mutation where it has one (sign != 0)."""
        parent = bases.select(population.base_index[index])
        mutated = population.signs[index] != 0
        if population.scale is not None:  # random starting points: named by their offset alone
            return cls(parent.offsets, parent.sigmas, torch.where(mutated, population.offsets[index], parent.starts))
        offsets = torch.cat([parent.offsets, torch.where(mutated, population.offsets[index], -1)[:, None]], 1)
        sigmas = torch.cat([parent.sigmas, torch.full((len(index), 1), float(population.sigma),
                                                      dtype=torch.float64)], 1)
        # unmutated members keep their lineage: move the -1 padding to the end and drop all-padding columns
        order = (offsets < 0).to(torch.int8).argsort(dim=1, stable=True)
        offsets, sigmas = offsets.gather(1, order), sigmas.gather(1, order)
        keep = int((offsets >= 0).sum(1).max()) if offsets.numel() else 0
        return cls(offsets[:, :keep].contiguous(), sigmas[:, :keep].contiguous(), parent.starts)

    def rows(self, root: torch.Tensor, noise: NoiseTable, init_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The members' parameters [B, D], rebuilt from ``root`` [D] with ``noise`` (and ``init_scale`` [D], the
        random starting points' scale, where some member has one)."""
        dim = root.numel()
        rows = root[None].expand(len(self), dim).clone()
        started = self.starts >= 0
        if bool(started.any()):
            if init_scale is None:
                raise ValueError("these lineages start from random points: rebuilding them needs init_scale")
            # the expression materialize() evaluated for generation 0: root + (1.0 * eps) * init_scale
            start = (1.0 * noise.get(self.starts.clamp_min(0), dim)) * init_scale.to(rows)
            rows = torch.where(started.to(rows.device)[:, None], rows + start, rows)
        for k in range(self.offsets.shape[1]):
            active = self.offsets[:, k] >= 0
            eps = noise.get(self.offsets[:, k].clamp_min(0), dim)
            step = eps * self.sigmas[:, k].to(device=eps.device, dtype=eps.dtype)[:, None]
            rows = torch.where(active.to(rows.device)[:, None], rows + step, rows)
        return rows

    def state(self) -> dict[str, torch.Tensor]:
        return {"offsets": self.offsets.clone(), "sigmas": self.sigmas.clone(), "starts": self.starts.clone()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Lineages:
        lineages = cls(state["offsets"].cpu().to(torch.int64), state["sigmas"].cpu().to(torch.float64))
        if "starts" in state:  # absent from a state written before init = 'random'
            lineages.starts = state["starts"].cpu().to(torch.int64)
        return lineages


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
    _state_keys = ("root", "elite_sum", "elite_count", "init_scale")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        # Generation 0 (init "center"): the starting point itself, and mutants of it. It is not a re-evaluated
        # elite (elite_count is empty until generation 0 is told). init "random": random starting points.
        self.root = self._random_root() if self.init_scale is not None else self.center.clone()
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
            self.center = self.elite_params[0].clone()
            self.candidates = lineage(top)
            self.candidate_params = params[top].clone()
            metrics = {"train/elite_fitness": float(validation[best]),
                       "train/elite_evaluations": float(c.elite_episodes)}
        else:
            elite = int(mean[:carried].argmax()) if carried else int(order[0])
            self.center = params[elite].clone()
            self.elites = lineage(top)
            self.elite_params = params[top].clone()
            self.elite_sum = total[top]
            self.elite_count = count[top]
            metrics = {"train/elite_fitness": float(mean[elite]), "train/elite_evaluations": float(count[elite])}
        self.parents = lineage(order[: c.truncation])
        self.parent_params = params[order[: c.truncation]].clone()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(elites=self.elites.state(), parents=self.parents.state(), candidates=self.candidates.state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("elites", "parents", "candidates", "root"):
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
