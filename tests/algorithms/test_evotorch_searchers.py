"""EvoTorch's searchers (CMA-ES, sep-CMA-ES, PGPE, SNES, XNES, CEM) on neuroevo's ask/tell: convergence on
sphere and progress on Rastrigin, determinism, state round trips, config errors, and the errors without
EvoTorch or with a release the adapters do not support."""

import io
import math
import sys

import pytest
import torch

pytest.importorskip("evotorch")

from neuroevo.algorithms import evotorch_internals  # noqa: E402
from neuroevo.algorithms.evotorch_searchers import CEM, CMAES, PGPE, SNES, XNES  # noqa: E402

D = 10
TARGET = torch.linspace(-1.0, 1.0, D)  # the optimum; every search starts at 0


def sphere(x):
    return -((x - TARGET) ** 2).sum(-1)


def rastrigin(x):
    z = x - TARGET
    return -(10 * D + (z * z - 10 * torch.cos(2 * math.pi * z)).sum(-1))


# Settings for D = 10 (the defaults are for networks; PGPE's step sizes and radius most of all).
SEARCHERS = {
    "cmaes": (CMAES, {"sigma": 0.5}),
    "sep-cmaes": (CMAES, {"sigma": 0.5, "separable": True}),
    "pgpe": (PGPE, {"popsize": 50, "sigma_norm": None, "sigma": 0.5, "lr": 0.025, "max_speed": 0.05}),
    "snes": (SNES, {"sigma": 0.5}),
    "xnes": (XNES, {"sigma": 0.5}),
    "cem": (CEM, {}),
}


def make(name, seed=0, **overrides):
    cls, kwargs = SEARCHERS[name]
    return cls(D, seed=seed, **{**kwargs, **overrides})


def run(opt, fn, generations):
    populations = []
    for _ in range(generations):
        params = opt.ask()
        populations.append(params)
        opt.tell(fn(params))
    return populations


@pytest.fixture(params=sorted(SEARCHERS))
def name(request):
    return request.param


def test_ask_returns_the_population_and_tell_moves_the_center(name):
    opt = make(name)
    params = opt.ask()
    assert params.shape == (opt.popsize, D) and params.dtype == torch.float32 and params.device == opt.device
    assert torch.equal(opt.ask(), params)  # asking again without a tell: the same generation
    metrics = opt.tell(sphere(params))
    assert metrics["train/sigma"] > 0 and opt.generation == 1
    assert not torch.equal(opt.center, torch.zeros(D))
    assert metrics["train/best_fitness"] == pytest.approx(float(sphere(params).max()))
    assert not torch.equal(opt.ask(), params)


def test_popsize_defaults():
    # EvoTorch's (and Hansen's) 4 + floor(3 ln D) where the config leaves popsize to the algorithm
    for cls in (CMAES, SNES, XNES):
        assert cls(D).popsize == 4 + math.floor(3 * math.log(D)) == 10
        assert cls(1000).ask().shape == (4 + math.floor(3 * math.log(1000)), 1000)
    assert PGPE(D).popsize == 200 and CEM(D).popsize == 100


def test_pgpe_initial_spread_from_sigma_norm_else_sigma():
    # sigma_norm (the ClipUp paper's radius, default 0.27) gives every coordinate sigma_norm / sqrt(D),
    # whatever sigma says; sigma counts where sigma_norm is None.
    stdev = PGPE(D, sigma=0.5).state_dict()["search"]["stdev"]
    torch.testing.assert_close(stdev, torch.full((D,), 0.27 / math.sqrt(D)))
    assert torch.equal(PGPE(D, sigma=0.5, sigma_norm=None).state_dict()["search"]["stdev"], torch.full((D,), 0.5))


def test_maximizes_sphere(name):
    opt = make(name)
    assert float(sphere(opt.center[None])) < -4.0
    for _ in range(400):
        opt.tell(sphere(opt.ask()))
        if float(sphere(opt.center[None])) > -1e-3:
            break
    assert float(sphere(opt.center[None])) > -1e-3, f"{name} after {opt.generation} generations"


def test_progress_on_rastrigin(name):
    opt = make(name, popsize=50)
    start = float(rastrigin(opt.center[None]))  # about -94
    run(opt, rastrigin, 120)
    assert float(rastrigin(opt.center[None])) > start / 2
    assert opt.best_fitness > start / 2


def test_same_seed_same_populations_other_seed_differs(name):
    a, b, c = run(make(name, seed=3), sphere, 4), run(make(name, seed=3), sphere, 4), run(make(name, seed=4), sphere, 4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_draws_leave_the_global_generator_alone(name):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    run(make(name), sphere, 2)
    assert torch.equal(torch.rand(3), expected)


def _reload(opt, name):
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    other = make(name, seed=99)  # another seed and start: everything comes from the state
    other.load_state_dict(torch.load(buf, weights_only=True))
    return other


def test_state_round_trip_continues_identically(name):
    a = make(name, seed=1)
    run(a, rastrigin, 3)
    b = _reload(a, name)
    assert torch.equal(a.center, b.center)
    for x, y in zip(run(a, rastrigin, 3), run(b, rastrigin, 3), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a.center, b.center) and a.best_fitness == b.best_fitness


def test_state_saved_between_ask_and_tell(name):
    a = make(name, seed=2)
    run(a, sphere, 2)
    params = a.ask()
    b = _reload(a, name)
    assert torch.equal(b.ask(), params)
    a.tell(sphere(params))
    b.tell(sphere(params))
    assert torch.equal(a.center, b.center) and torch.equal(a.ask(), b.ask())


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (CMAES, {"popsize": 0}, "CMAES: popsize must be positive, got 0"),
        (CMAES, {"popsize": 1}, "CMAES: popsize must be at least 2, got 1"),
        (CMAES, {"sigma": 0.0}, "CMAES: sigma must be positive, got 0.0"),
        (CMAES, {"lr": -1.0}, "CMAES: lr must be positive"),
        (CMAES, {"sigma_min": -1.0}, "CMAES: sigma_min must be positive or None"),
        (PGPE, {"popsize": 51}, "PGPE: popsize must be even"),
        (PGPE, {"max_speed": 0.0}, "PGPE: max_speed must be positive"),
        (PGPE, {"momentum": 1.0}, r"PGPE: momentum must be in \[0, 1\)"),
        (PGPE, {"sigma_norm": -0.1}, "PGPE: sigma_norm must be positive or None"),
        (PGPE, {"lr": 0.0}, "PGPE: lr must be positive"),
        (PGPE, {"ranking_method": "best"}, "PGPE: ranking_method must be one of .*centered"),
        (SNES, {"sigma_lr": -0.1}, "SNES: sigma_lr must be positive or None"),
        (XNES, {"ranking_method": "fancy"}, "XNES: ranking_method must be one of"),
        (CEM, {"parenthood_ratio": 1.5}, r"CEM: parenthood_ratio must be in \(0, 1\]"),
        (CEM, {"popsize": 10, "parenthood_ratio": 0.1}, "CEM: popsize \\* parenthood_ratio must give at least 2"),
        (CEM, {"sigma_max_change": 0.0}, "CEM: sigma_max_change must be positive or None"),
    ],
)
def test_bad_config(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(D, **kwargs)


def test_other_algorithms_state_is_refused():
    with pytest.raises(ValueError, match="state of a 'SNES' optimizer cannot be loaded into XNES"):
        XNES(D).load_state_dict(SNES(D).state_dict())


def test_missing_evotorch_is_a_clear_error(monkeypatch):
    evotorch_internals._evotorch.cache_clear()
    monkeypatch.setitem(sys.modules, "evotorch", None)
    try:
        with pytest.raises(ImportError, match="pip install evotorch"):
            CMAES(D)
    finally:
        evotorch_internals._evotorch.cache_clear()


@pytest.mark.parametrize("version", ["0.5.2", "0.7.0", "0.7.0rc1", "1.0.0", "unknown"])
def test_unsupported_evotorch_is_a_one_line_error(monkeypatch, version):
    import evotorch

    evotorch_internals._evotorch.cache_clear()
    monkeypatch.setattr(evotorch, "__version__", version)
    try:
        with pytest.raises(ImportError) as err:
            CMAES(D)
    finally:
        evotorch_internals._evotorch.cache_clear()
    message = str(err.value)
    assert "\n" not in message
    assert f"support evotorch>=0.6,<0.7, found evotorch {version}: pip install 'evotorch>=0.6,<0.7'" in message


@pytest.mark.parametrize("version", ["0.6.0", "0.6.1", "0.6.2.dev3+g0123abc"])
def test_supported_evotorch_versions_pass(version):
    evotorch_internals._check_evotorch_version(version)


def test_pyproject_bounds_evotorch_as_the_adapters_do():
    # Every extra that brings EvoTorch asks for the releases the adapters check for at run time.
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    wanted = [req for extra in pyproject["project"]["optional-dependencies"].values() for req in extra
              if req.startswith("evotorch")]
    assert wanted and set(wanted) == {evotorch_internals.evotorch_requirement()} == {"evotorch>=0.6,<0.7"}
