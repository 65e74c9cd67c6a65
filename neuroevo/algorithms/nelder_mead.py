"""Nelder-Mead simplex search: Nelder and Mead (1965), "A simplex method for function minimization",
The Computer Journal 7(4), 308-313, with the parallel vertex updates of Lee and Wiswall (2007), "A parallel
implementation of the simplex function minimization routine", Computational Economics 30, 171-187.

One simplex of n + 1 vertices x_1..x_{n+1}, sorted by fitness, best first. The population updates its
m = min(P // 4, max(1, n // 2)) worst vertices at once (Lee and Wiswall's parallel simplex; m = 1 is the classic
method): with c the centroid of the n + 1 - m vertices kept, each worst vertex x_j gets the trial points

    reflection           r_j = c + alpha (c - x_j)
    expansion            e_j = c + gamma (r_j - c)
    outside contraction  o_j = c + rho (r_j - c)
    inside contraction   i_j = c + rho (x_j - c)

and, with f_1 the best fitness and f_{j-1} that of the vertex just better than x_j (all maximized),
x_j becomes e_j if f(r_j) > f_1 and f(e_j) > f(r_j), else r_j if f(r_j) > f_1 or f(r_j) > f_{j-1};
else o_j if f(r_j) > f_j and f(o_j) >= f(r_j); else i_j if f(r_j) <= f_j and f(i_j) > f_j; else x_j
stays. When no worst vertex changes, the simplex shrinks towards the best vertex:
x_i <- x_1 + shrink (x_i - x_1), i > 1. Coefficients alpha = 1, gamma = 2, rho = 0.5, shrink = 0.5 are
Nelder and Mead's. These are the rules as Lagarias, Reeds, Wright and Wright (1998), SIAM J. Optim. 9(1),
state them (a better expansion point is taken, as there), in the sign of maximization.

Batching: NM decides sequentially which of r, e, o, i it needs (one or two evaluations per vertex). Here
each generation evaluates all four for each of the m vertices at once: P = 4m trial points, the rule above
then picks, with no Python loop over vertices. This spends 4 evaluations where the sequential method
spends 1 or 2, and buys one generation per simplex step. A shrink moves n vertices, which are evaluated
in the next ceil(n / P) generations, before the next step.

The simplex for large D: a full simplex has D + 1 vertices, a [D + 1, D] tensor (400 MB at D = 10^4,
and D + 1 evaluations before the first step). The simplex here spans n = min(D, ``max_dims``) random
orthonormal directions u_i around the start: x_1 = center, x_{i+1} = center + sigma sqrt(D) u_i, each
vertex as far from the start as a N(0, sigma^2 I) step is long. For D <= max_dims that is a randomly
rotated right-angled simplex; for larger D, NM searches the n-dimensional affine subspace through the
start (its moves never leave the span of the simplex). Its n + 1 vertices are evaluated over the first
ceil((n + 1) / P) generations.

Restarts: when the simplex has shrunk below ``restart_tol`` times its initial size (max_i |x_i - x_1|), a
new simplex is built around the best vertex with fresh random directions and the spread sigma again. For
a full simplex (D <= max_dims) the default 1e-3 lets NM converge first, then restarts it from its claimed
optimum, as Press et al. (Numerical Recipes, section 10.5) advise; that also leaves local optima
(Rastrigin). For a subspace simplex the default 0.1 moves on to a new random subspace once this one is
searched coarsely: converging within n of D dimensions gains little.

Padding: when 4m, or the vertices left to evaluate, are fewer than P, the remaining rows re-evaluate the best
vertex x_1, and its fitness becomes the mean of all its evaluations (the GA's re-evaluated elites): with noisy
fitness (RL episodes) a lucky episode then cannot hold the simplex's top place for good. Any other vertex
keeps the fitness of the one evaluation that admitted it. The solution (``center``) is the best evaluated
vertex.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuroevo.algorithms.base import Optimizer, OptimizerConfig


@dataclass
class NelderMeadConfig(OptimizerConfig):
    popsize: int = 32
    """trial points per generation: r, e, o, i for each of the popsize // 4 worst vertices (at least 4)"""
    sigma: float = 0.1
    """spread of the initial simplex: each vertex lies sigma * sqrt(D) from the start"""
    reflection: float = 1.0
    """alpha: r = c + alpha (c - x_worst)"""
    expansion: float = 2.0
    """gamma: e = c + gamma (r - c)"""
    contraction: float = 0.5
    """rho: o = c + rho (r - c), i = c + rho (x_worst - c)"""
    shrink: float = 0.5
    """x_i <- x_best + shrink (x_i - x_best) when no vertex improved"""
    max_dims: int = 128
    """the simplex spans min(D, max_dims) directions (max_dims + 1 vertices at most)"""
    restart_tol: float | None = None
    """restart around the best vertex when the simplex is smaller than this times its initial size (0: never;
    None: 1e-3 for a full simplex, D <= max_dims, and 0.1 for a subspace one)"""


class NelderMead(Optimizer):
    """Nelder-Mead with Lee and Wiswall's parallel vertex updates, batched trial points and restarts."""

    config_class = NelderMeadConfig
    name = "NelderMead"
    _state_keys = ("simplex", "simplex_fitness", "evaluations", "restarts")

    def __init__(self, center, config=None, **kwargs):
        super().__init__(center, config, **kwargs)
        # vertices [V, D] sorted best first once all are evaluated; NaN fitness: not evaluated yet
        self.simplex = torch.empty(0, self.num_params, device=self.device)
        self.simplex_fitness = torch.empty(0, device=self.device)
        self.evaluations = torch.empty(0, dtype=torch.int64, device=self.device)  # evaluations behind each fitness
        self.restarts = 0

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if c.popsize < 4:
            raise ValueError(f"NelderMead: popsize must be at least 4 (r, e, o, i of a vertex), got {c.popsize}")
        if c.reflection <= 0:
            raise ValueError(f"NelderMead: reflection must be positive, got {c.reflection}")
        if c.expansion <= max(1.0, c.reflection):
            raise ValueError(f"NelderMead: expansion must exceed 1 and reflection, got {c.expansion}")
        if not 0 < c.contraction < 1 or not 0 < c.shrink < 1:
            raise ValueError(f"NelderMead: contraction and shrink must be in (0, 1), got {c.contraction, c.shrink}")
        if c.max_dims < 1:
            raise ValueError(f"NelderMead: max_dims must be at least 1, got {c.max_dims}")
        if c.restart_tol is not None and not 0 <= c.restart_tol < 1:
            raise ValueError(f"NelderMead: restart_tol must be in [0, 1) or None, got {c.restart_tol}")

    @property
    def dims(self) -> int:
        """n: the simplex has n + 1 vertices."""
        return min(self.num_params, self.config.max_dims)

    @property
    def moving(self) -> int:
        """m: the worst vertices updated per generation (at most half the simplex, so that the centroid
        averages the better half at least: moving all but the best reflects them through one point)."""
        return min(self.popsize // 4, max(1, self.dims // 2))

    @property
    def initial_size(self) -> float:
        """max_i |x_i - x_1| of a new simplex: sigma sqrt(D)."""
        return self.config.sigma * math.sqrt(self.num_params)

    @property
    def restart_tol(self) -> float:
        if self.config.restart_tol is not None:
            return self.config.restart_tol
        return 1e-3 if self.dims == self.num_params else 0.1

    def _ask(self) -> torch.Tensor:
        if self.simplex.shape[0] == 0:
            self.simplex = self.center[None].clone()
            self.simplex_fitness = torch.full((1,), float("nan"), device=self.device)
            self.evaluations = torch.zeros(1, dtype=torch.int64, device=self.device)
        if self.simplex.shape[0] < self.dims + 1:  # start or restart: span a new simplex around vertex 0
            self._span()
        todo = self._unevaluated()
        rows = self.simplex[todo] if todo.numel() else self._trial_points()
        pad = self.popsize - rows.shape[0]
        return torch.cat([rows, self.simplex[:1].expand(pad, -1)]) if pad else rows

    def _span(self) -> None:
        """Add vertices x_1 + sigma sqrt(D) u_i along random orthonormal directions u_i."""
        new = self.dims + 1 - self.simplex.shape[0]
        gauss = torch.randn(self.num_params, new, generator=self.generator).to(self.device)
        directions = torch.linalg.qr(gauss).Q.T  # [new, D], orthonormal rows
        vertices = self.simplex[:1] + self.initial_size * directions
        self.simplex = torch.cat([self.simplex, vertices])
        self.simplex_fitness = torch.cat([self.simplex_fitness, torch.full((new,), float("nan"), device=self.device)])
        self.evaluations = torch.cat([self.evaluations, torch.zeros(new, dtype=torch.int64, device=self.device)])

    def _unevaluated(self) -> torch.Tensor:
        """Indices of the next (at most P) vertices still to evaluate."""
        return torch.isnan(self.simplex_fitness).nonzero().flatten()[: self.popsize]

    def _trial_points(self) -> torch.Tensor:
        """[4m, D]: reflections, expansions, outside and inside contractions of the m worst vertices."""
        c = self.config
        kept = self.dims + 1 - self.moving
        centroid = self.simplex[:kept].mean(0)
        worst = self.simplex[kept:]
        reflected = centroid + c.reflection * (centroid - worst)
        return torch.cat([
            reflected,
            centroid + c.expansion * (reflected - centroid),
            centroid + c.contraction * (reflected - centroid),
            centroid + c.contraction * (worst - centroid),
        ])

    def _tell(self, params, fitness):
        todo = self._unevaluated()
        if todo.numel():
            self.simplex_fitness[todo] = fitness[: todo.numel()]
            self.evaluations[todo] = 1
            replaced, used = 0, todo.numel()
        else:
            replaced, used = self._step(fitness), 4 * self.moving
        if used < self.popsize:  # the padding re-evaluated vertex 0: its fitness is the mean of all its evaluations
            count = self.evaluations[0]
            total = self.simplex_fitness[0] * count + fitness[used:].sum()
            self.evaluations[0] = count + (self.popsize - used)
            self.simplex_fitness[0] = total / self.evaluations[0]
        metrics = {"train/replaced": float(replaced)}
        if not torch.isnan(self.simplex_fitness).any():
            order = self.simplex_fitness.argsort(descending=True, stable=True)
            self.simplex, self.simplex_fitness = self.simplex[order], self.simplex_fitness[order]
            self.evaluations = self.evaluations[order]
            size = float((self.simplex[1:] - self.simplex[0]).norm(dim=1).max())
            metrics["train/simplex_size"] = size / self.initial_size
            if size < self.restart_tol * self.initial_size:  # collapsed: the next ask spans a new one
                self.simplex, self.simplex_fitness = self.simplex[:1], self.simplex_fitness[:1]
                self.evaluations = self.evaluations[:1]
                self.restarts += 1
        known = torch.nan_to_num(self.simplex_fitness, nan=float("-inf"))
        self.center = self.simplex[int(known.argmax())].clone()
        return {**metrics, "train/restarts": float(self.restarts)}

    def _step(self, fitness: torch.Tensor) -> int:
        """Move the m worst vertices by the rules above (or shrink); returns how many moved."""
        m, kept = self.moving, self.dims + 1 - self.moving
        trials = self._trial_points().view(4, m, self.num_params)
        f_r, f_e, f_o, f_i = fitness[: 4 * m].view(4, m)
        f_old = self.simplex_fitness[kept:]
        f_next = self.simplex_fitness[kept - 1 : -1]  # the vertex just better than each
        expand = f_r > self.simplex_fitness[0]
        reflect = ~expand & (f_r > f_next)
        outside = ~expand & ~reflect & (f_r > f_old)
        inside = ~expand & ~reflect & ~outside
        moved = expand | reflect | (outside & (f_o >= f_r)) | (inside & (f_i > f_old))
        pick = torch.where(expand & (f_e > f_r), 1, torch.where(expand | reflect, 0, torch.where(outside, 2, 3)))
        members = torch.arange(m, device=self.device)
        self.simplex[kept:] = torch.where(moved[:, None], trials[pick, members], self.simplex[kept:])
        self.simplex_fitness[kept:] = torch.where(moved, fitness[: 4 * m].view(4, m)[pick, members], f_old)
        self.evaluations[kept:] = torch.where(moved, 1, self.evaluations[kept:])
        if not bool(moved.any()):  # Lee and Wiswall: shrink only when no vertex improved
            best = self.simplex[:1]
            self.simplex[1:] = best + self.config.shrink * (self.simplex[1:] - best)
            self.simplex_fitness[1:] = float("nan")
        return int(moved.sum())
