"""EvoTorch's internals: the only code in neuroevo that relies on how EvoTorch works inside.

Its private attributes and the hooks it calls, the layout of its search states, its logger and warnings, its
draws from torch's global generator. Written against EvoTorch 0.6.1; the version is checked when EvoTorch is
first imported here, by the first searcher built (EVOTORCH_VERSIONS, the range of pyproject.toml's extras). A
new EvoTorch release is adapted here, and the adapters (:mod:`neuroevo.algorithms.evotorch_searchers`) stay as
they are. Each function says which reliance it holds and why neuroevo needs it. The adapters use EvoTorch's
public API only (constructors, ``step()``, ``status``, ``population``, ``problem.manual_seed``,
``SolutionBatch.set_evals``, the functional ``*_ask``/``*_tell`` and the documented fields of their states,
``stdev`` and CEM's ``center``), the order of work within ``step()`` that their module docstring describes (the
tests pin it), and these functions.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import warnings
from types import SimpleNamespace

import torch

EVOTORCH_VERSIONS = ((0, 6), (0, 7))
"""the EvoTorch releases these adapters support, [lowest, first unsupported) as (major, minor)"""


def evotorch_requirement() -> str:
    """The supported releases as a requirement, ``"evotorch>=0.6,<0.7"``: what pyproject.toml's extras say."""
    (lo_major, lo_minor), (hi_major, hi_minor) = EVOTORCH_VERSIONS
    return f"evotorch>={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"


def _check_evotorch_version(version: str) -> None:
    """Raise a one-line ImportError unless EvoTorch ``version`` is in :data:`EVOTORCH_VERSIONS`: the
    functions of this section read its internals, which change between minor releases without notice."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or not EVOTORCH_VERSIONS[0] <= (int(match[1]), int(match[2])) < EVOTORCH_VERSIONS[1]:
        requirement = evotorch_requirement()
        raise ImportError(f"neuroevo's CMAES, PGPE, SNES, XNES and CEM support {requirement}, found evotorch "
                          f"{version}: pip install '{requirement}'")


@functools.cache
def _evotorch() -> SimpleNamespace:
    """EvoTorch's pieces used here, imported (and the version checked) on first use so that ``import
    neuroevo`` works without it; with the two subclasses that hook into EvoTorch's internals."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script", category=DeprecationWarning)
            import evotorch
            from evotorch.algorithms import CMAES, SNES, XNES
            from evotorch.algorithms import functional as func
            from evotorch.tools.ranking import rankers
    except ImportError as err:
        raise ImportError(f"CMAES, PGPE, SNES, XNES and CEM run on EvoTorch: pip install evotorch ({err})") from None
    _check_evotorch_version(evotorch.__version__)

    class HandoverProblem(evotorch.Problem):
        """A Problem that runs nothing: evaluating a batch writes ``handover``, the fitness [P] that
        neuroevo's ``tell()`` received (NaN where the fitness is written into the population later).

        Overrides the hooks ``Problem._evaluate_batch`` (EvoTorch's documented extension point) and
        ``Problem._fill`` (called wherever EvoTorch allocates a batch)."""

        def __init__(self, num_params: int, device: torch.device, dtype: torch.dtype = torch.float32):
            super().__init__("max", solution_length=num_params, dtype=dtype, device=device,
                             store_solution_stats=False)
            self.handover: torch.Tensor | None = None
            self.expected: torch.Tensor | None = None

        def _fill(self, values: torch.Tensor) -> None:
            # Batches EvoTorch allocates start as zeros: no random draw outside the seeded sampling.
            values.zero_()

        def _evaluate_batch(self, batch) -> None:
            fitness, expected, self.handover, self.expected = self.handover, self.expected, None, None
            if expected is not None and not torch.equal(batch.access_values(keep_evals=True), expected):
                raise RuntimeError("EvoTorch evaluated a population other than the one ask() returned; "
                                   f"evotorch {evotorch.__version__} is not supported")
            if fitness is None:
                fitness = torch.full((len(batch),), float("nan"), device=batch.device)
            batch.set_evals(fitness)

    class AskedCMAES(CMAES):
        """EvoTorch's CMA-ES whose next ``step()`` uses the sample ``ask()`` drew (``asked``: zs, ys, xs).

        Relies on ``CMAES._step`` drawing its population with one ``sample_distribution()`` call without
        arguments that returns (zs, ys, xs): the only way to hand ``ask()``'s sample to ``step()``."""

        asked: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

        def sample_distribution(self, num_samples=None):
            if self.asked is not None and num_samples is None:
                asked, self.asked = self.asked, None
                return asked
            return super().sample_distribution(num_samples)

    return SimpleNamespace(func=func, rankers=tuple(rankers), SNES=SNES, XNES=XNES,
                           HandoverProblem=HandoverProblem, AskedCMAES=AskedCMAES)


@contextlib.contextmanager
def _quiet():
    """EvoTorch announces each Problem's dtype and device at INFO level (its logger ``evotorch.core``) and
    warns about its own tensor handling while it builds a searcher: none of it is news to a neuroevo user,
    and algorithms never log."""
    core_logger = logging.getLogger("evotorch.core")
    level = core_logger.level
    core_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
            # CMAES hands a tensor to np.floor, which NumPy 2 warns about
            warnings.filterwarnings("ignore", message="__array_wrap__ must accept context", category=DeprecationWarning)
            yield
    finally:
        core_logger.setLevel(level)


@contextlib.contextmanager
def _global_rng(device: torch.device, seed: int | None = None):
    """Torch's global generators of the CPU and ``device`` inside: seeded with ``seed`` (unless None),
    and restored after. EvoTorch's functional samplers draw from them, and its classes draw from them
    outside the seeded sampling too (a randint for a vmap-friendly False, wherever it makes a tensor for
    random values): every call into EvoTorch runs inside, so that it never moves the caller's stream."""
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.default_generator.manual_seed(seed)
            yield
        return
    index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.random.fork_rng(devices=[index], device_type="cuda"), torch.cuda.device(index):
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            torch.cuda.manual_seed(seed)  # this device's generator only
        yield


def _unlimited_if_none(value: float | None) -> float:
    """A largest relative change of the standard deviations (``stdev_max_change``) for EvoTorch's functional
    searchers, which read None as infinity: a standard deviation that collapses to 0 would then become
    0 * inf = NaN. The largest float32 limits nothing either, and keeps 0 at 0."""
    return float(torch.finfo(torch.float32).max) if value is None else value


_CMAES_STATE = ("m", "sigma", "C", "A", "p_sigma", "p_c")
"""CMAES's attributes that evolve: mean, step size, covariance, its factor, the two evolution paths"""


def _cmaes_state(searcher) -> dict[str, torch.Tensor]:
    """CMA-ES's search state, read from the attributes of EvoTorch's ``CMAES`` (it has no state dict)."""
    return {key: getattr(searcher, key) for key in _CMAES_STATE}


def _load_cmaes_state(searcher, state: dict[str, torch.Tensor], generation: int) -> None:
    """Write :func:`_cmaes_state`'s ``state`` back into a fresh ``CMAES``, ``generation`` steps on: the
    private step count, which ``step()`` reads for the h_sigma test and the C refactoring schedule and
    which has no setter."""
    for key in _CMAES_STATE:
        setattr(searcher, key, state[key])
    searcher._steps_count = generation


def _cmaes_center(searcher) -> torch.Tensor:
    """The mean m [D] of EvoTorch's ``CMAES``."""
    return searcher.m


def _cmaes_mean_stdev(searcher) -> float:
    """The coordinates' mean standard deviation, sigma * mean_i sqrt(C_ii), of EvoTorch's ``CMAES``
    (``C`` is the diagonal [D] when separable, else [D, D])."""
    diag = searcher.C if searcher.separable else searcher.C.diagonal()
    return float(searcher.sigma * diag.clamp_min(0).sqrt().mean())


def _nes_state(searcher) -> dict[str, torch.Tensor]:
    """The search distribution's parameters of EvoTorch's SNES or XNES: mu and sigma (SNES: stdevs [D];
    XNES: A [D, D] and its inverse), from the private ``_distribution`` (no public read of the whole)."""
    return dict(searcher._distribution.parameters)


def _load_nes_state(searcher, state: dict[str, torch.Tensor]) -> None:
    """Write :func:`_nes_state`'s ``state`` back: the private ``_distribution`` has no setter."""
    searcher._distribution = searcher._distribution.modified_copy(**state)


def _pgpe_center(state) -> torch.Tensor:
    """The center [D] of a functional PGPE state: its optimizer's (ClipUp's) state holds it."""
    return state.optimizer_state.center


def _pgpe_velocity(state) -> torch.Tensor:
    """ClipUp's velocity [D] in a functional PGPE state."""
    return state.optimizer_state.velocity


def _load_pgpe_state(state, stdev: torch.Tensor, velocity: torch.Tensor):
    """A functional PGPE ``state`` with ``stdev`` [D] and ClipUp's ``velocity`` [D] replaced."""
    return state._replace(stdev=stdev, optimizer_state=state.optimizer_state._replace(velocity=velocity))


def _load_cem_state(state, center: torch.Tensor, stdev: torch.Tensor):
    """A functional CEM ``state`` with ``center`` [D] and ``stdev`` [D] replaced."""
    return state._replace(center=center, stdev=stdev)


