"""Members named by their lineage, as the Deep Neuroevolution GA stores its genomes (Such et al. 2017): the
starting point's noise offset (a random network, ``init = "random"``) and the (noise offset, sigma) of every
mutation since, from which any process holding the noise table rebuilds the member bit for bit. The GA and
random search keep every member so (:class:`RandomStartsOptimizer`), which keeps their checkpoints free of
parameter vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from neuroevo.algorithms.noise import NoiseTable
from neuroevo.algorithms.population import NoiseTableOptimizer, Population, tensor_digest


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


class RandomStartsOptimizer(NoiseTableOptimizer):
    """Base of the noise-table optimizers that can start from random points (GA, random search; their configs
    have ``init``). With ``init = "random"`` such a member is the root (the starting point with its random
    entries zeroed) plus ``init_scale * eps``: a Gaussian draw with the policy's init standard deviation for each
    parameter (``Policy.init_std()``, passed as ``init_scale=``), named by its noise offset alone, as Such et al.
    drew their generation 0 and their random search's networks from seeds. ``init = "center"``: members start
    from the root, the center itself.

    Every member such an optimizer keeps is named by its :class:`Lineages` row from the root: the center and the
    best member seen too (``center_lineage``, ``best_lineage``; None until the first ``tell``, while they are the
    starting point), so that ``compact_state_dict()``, a checkpoint's form, holds no D-vector: it leaves out
    the root and the init scale, which an optimizer built with the same center and init scale computes itself
    (a digest of the two checks that it was), and names the center and the best by their lineages.
    """

    takes_init_scale = True
    has_genomes = True
    _state_keys: tuple[str, ...] = ("root", "init_scale")

    def __init__(self, center: torch.Tensor | int, config: Any = None, *, init_scale: Any = None, **kwargs: Any):
        super().__init__(center, config, **kwargs)
        self.init_scale: torch.Tensor | None = None
        if self.config.init == "random":
            if init_scale is None:
                raise ValueError(f"{self.name}: init = 'random' needs init_scale=, the policy's init standard "
                                 "deviation per parameter (policy.init_std())")
            scale = torch.as_tensor(init_scale).to(self.center)
            if scale.shape != self.center.shape or not bool(torch.isfinite(scale).all()) or bool((scale < 0).any()):
                raise ValueError(f"{self.name}: init_scale must be [D] = [{self.num_params}] finite and >= 0, got "
                                 f"shape {tuple(scale.shape)}")
            if not bool((scale > 0).any()):
                raise ValueError(f"{self.name}: init = 'random' with an init_scale of zeros draws the center itself "
                                 "every time (a policy without a random init): use init = 'center'")
            self.init_scale = scale
        # The root of every lineage: the center with its random entries (init_scale > 0) zeroed, or the center.
        self.root = self._random_root() if self.init_scale is not None else self.center.clone()
        self.center_lineage: Lineages | None = None
        self.best_lineage: Lineages | None = None

    def _validate_config(self) -> None:
        super()._validate_config()
        if self.config.init not in ("center", "random"):
            raise ValueError(f"{self.name}: init must be 'center' or 'random', got {self.config.init!r}")

    def _random_root(self) -> torch.Tensor:
        """The root of random starting points: the center with its random entries (init_scale > 0) zeroed."""
        assert self.init_scale is not None
        return torch.where(self.init_scale > 0, torch.zeros_like(self.center), self.center)

    def _random_starts(self, root: torch.Tensor, n: int) -> Population:
        """``n`` random starting points around ``root``, drawn from this generation's stream."""
        offsets = self.noise.sample_offsets(n, self.num_params, self.generator)
        return Population(root[None], torch.zeros(n, dtype=torch.int64), offsets, torch.ones(n, dtype=torch.int8),
                          1.0, self.noise.seed, self.noise.size, scale=self.init_scale)

    def _lineage_of(self, index: int) -> Lineages:
        """The lineage of member ``index`` of the last ``ask`` (before its ``tell`` ends)."""
        raise NotImplementedError

    def _new_best(self, index: int) -> None:
        self.best_lineage = self._lineage_of(index)

    def _root_digest(self) -> str:
        """What a compact state checks an optimizer was built as the writer was: its root and init scale."""
        return tensor_digest(self.root, *([self.init_scale] if self.init_scale is not None else []))

    def _check_root(self, digest: str) -> None:
        if digest != self._root_digest():
            raise ValueError(
                f"{self.name}: this compact state was written by an optimizer built from another starting point "
                "or init scale (another policy init, seed or init setting): build it with the run's center and "
                "init_scale, or load a full state_dict()")

    def center_genome(self) -> dict[str, Any] | None:
        return {"lineage": self.center_lineage.state()} if self.center_lineage is not None else None

    def genome_params(self, genome: dict[str, Any]) -> torch.Tensor:
        return Lineages.from_state(genome["lineage"]).rows(self.root, self.noise, self.init_scale)[0]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key, lineage in (("center", self.center_lineage), ("best", self.best_lineage)):
            state[f"{key}_lineage"] = lineage.state() if lineage is not None else None
        return state

    def compact_state_dict(self) -> dict[str, Any]:
        state = self.state_dict()
        for key in ("center", "best"):
            if state[f"{key}_lineage"] is not None:
                del state[key]
        del state["root"], state["init_scale"]
        state["root_digest"] = self._root_digest()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        lineages = {key: state.get(f"{key}_lineage") for key in ("center", "best")}
        super().load_state_dict(self._full_state(state) if state.get("name") == self.name else state)
        self.center_lineage, self.best_lineage = (Lineages.from_state(x) if x is not None else None
                                                  for x in lineages.values())

    def _full_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` in the full form: root and init scale are this optimizer's own (if it was built as the
        writer was) where a compact state leaves them out, the center and best rebuilt from their lineages."""
        state = {"init_scale": None, **state}  # a state from before init = 'random'
        if "root_digest" in state:
            self._check_root(state["root_digest"])
            state.update(root=self.root, init_scale=self.init_scale)
        elif "root" not in state:  # random search's states before lineages called the root "start"
            state["root"] = state["start"]
        scale = state["init_scale"].to(self.device) if state["init_scale"] is not None else None
        for key in ("center", "best"):
            if key not in state:  # named by its lineage alone
                if state.get(f"{key}_lineage") is None:
                    raise ValueError(f"{self.name}: the state has neither a {key} nor its lineage")
                lineage = Lineages.from_state(state[f"{key}_lineage"])
                state[key] = lineage.rows(state["root"].to(self.device), self.noise, scale)[0]
        return state
