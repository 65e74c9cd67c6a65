"""How a part of the GPU check keeps to its time share (:mod:`neuroevo.bench.gpu_check` gives each part one).

A part gets a :class:`PartContext`: its device, ``quick``, and the ``time.perf_counter()`` deadline by which it
should be done. It measures its sizes in order through a :class:`Ladder`, which starts a size only while its
estimated cost fits in the time left and notes the sizes it skipped; it records rows as they are
measured (:meth:`PartContext.record`), which rewrites the part's JSON, so a run killed in the middle of a part
keeps what that part had measured.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass
class PartContext:
    """What a part runs with: ``device`` (the GPU, or the CPU where there is none), ``quick`` (tiny sizes),
    ``seed``, ``deadline`` (a ``time.perf_counter()`` value), ``out`` (the check's folder, for files a part
    keeps, e.g. the learning runs), and where its figures and notes go.

    ``save(figures)`` writes the figures measured so far (the runner's partial JSON); :meth:`record` and
    :meth:`note` call it.
    """

    device: torch.device
    quick: bool
    deadline: float
    seed: int = 0
    out: Path | None = None
    save: Callable[[dict[str, Any]], None] = lambda figures: None
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        """Whether the device is a GPU (else the checks compare the CPU with itself)."""
        return self.device.type == "cuda"

    def left(self) -> float:
        """Seconds left of the part's share (negative once it is overrun)."""
        return self.deadline - time.perf_counter()

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` more fit in the share."""
        return seconds <= self.left()

    def note(self, text: str) -> None:
        """A line for the part's JSON and the log: what was skipped and why, what was compared with what."""
        self.notes.append(text)
        print(f"    note: {text}", flush=True)
        self.save(self.figures)

    def record(self, key: str, row: dict[str, Any]) -> dict[str, Any]:
        """Append ``row`` to ``figures[key]`` and save; returns the row."""
        self.figures.setdefault(key, []).append(row)
        self.save(self.figures)
        return row

    def attempt(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``, or None with a note naming ``what`` where it raised (out of memory included):
        one configuration's failure must not cost the part's other figures."""
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 -- reported in the figures, the part goes on
            if isinstance(err, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            last = traceback.extract_tb(err.__traceback__)[-1]
            self.note(f"{what}: failed, {type(err).__name__}: {err} ({last.filename}:{last.lineno})")
            return None


class Ladder:
    """Sizes taken in the order given (usually increasing) while their estimated cost fits in the part's time left.

    The cost of size n is estimated from the last size m measured and its seconds t as t * (n / m) ** exponent:
    1 where the cost grows with the work (the CPU), less on a GPU, whose small sizes cost launches rather than
    work (0.5 errs toward trying the next size); 0 for a list of tasks, each costing about what the last did
    (sizes 1, 2, ... and ``label`` naming them). The first size is tried if ``first_s`` fits. The first size
    that does not fit ends the ladder with a note naming it and the sizes after it.
    """

    def __init__(self, ctx: PartContext, what: str, exponent: float = 1.0, first_s: float = 0.0,
                 label: Callable[[int], str] = "{:,}".format):
        self.ctx, self.what, self.exponent, self.first_s, self.label = ctx, what, exponent, first_s, label
        self.last: tuple[int, float] | None = None

    def estimate(self, size: int) -> float:
        """Estimated seconds of ``size``."""
        if self.last is None:
            return self.first_s
        m, t = self.last
        return t * (size / m) ** self.exponent

    def over(self, sizes: Iterable[int]) -> Iterator[int]:
        """The sizes to measure, timing each between two yields (so call :meth:`took` only to override)."""
        sizes = list(sizes)
        for i, size in enumerate(sizes):
            estimate = self.estimate(size)
            if not self.ctx.fits(estimate):
                skipped = ", ".join(map(self.label, sizes[i:]))
                self.ctx.note(f"{self.what}: skipped {skipped} for time (~{estimate:.0f} s estimated for "
                              f"{self.label(size)}, {max(self.ctx.left(), 0):.0f} s left of the part's share)")
                return
            start = time.perf_counter()
            yield size
            self.took(size, time.perf_counter() - start)

    def took(self, size: int, seconds: float) -> None:
        """Record that ``size`` took ``seconds`` (the base of the next estimate)."""
        self.last = (size, max(seconds, 1e-6))
