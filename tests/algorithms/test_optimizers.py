"""API, determinism, state and convergence tests run over every registered optimizer."""

import io
import math

import pytest
import torch
from objectives import rastrigin, run, sphere  # tests/algorithms/objectives.py

from neuroevo.algorithms import ALGORITHMS, ARS, ES, GA, NoiseTable, centered_ranks, make_optimizer, materialize


class _Small(dict):
    """Small settings per registered optimizer: a population of 20 (and the GA's selection sizes to fit it);
    an optimizer registered later needs no entry here."""

    def __missing__(self, algo):
        return {"popsize": 20, **({"truncation": 5, "num_elites": 2} if algo == "ga" else {})}


SMALL = _Small()


@pytest.fixture(params=sorted(ALGORITHMS))
def algo(request):
    return request.param


def test_ask_tell_contract(algo):
    opt = make_optimizer(algo, torch.zeros(7), seed=0, **SMALL[algo])
    params = opt.ask()
    assert params.shape == (20, 7) and params.dtype == torch.float32
    metrics = opt.tell(sphere(params))
    for key in ("train/fitness_mean", "train/fitness_max", "train/best_fitness", "train/nonfinite_fitness"):
        assert isinstance(metrics[key], (int, float))
    assert opt.generation == 1
    assert opt.center.shape == (7,) and opt.best.shape == (7,)
    assert metrics["train/best_fitness"] == pytest.approx(float(sphere(params).max()))


def test_tell_errors(algo):
    opt = make_optimizer(algo, torch.zeros(3), **SMALL[algo])
    with pytest.raises(RuntimeError, match="without a preceding ask"):
        opt.tell(torch.zeros(20))
    opt.ask()
    with pytest.raises(ValueError, match="got 5 fitness values for a population of 20"):
        opt.tell(torch.zeros(5))


def test_bad_config(algo):
    with pytest.raises(ValueError, match="popsize must be positive, got 0"):
        make_optimizer(algo, torch.zeros(3), popsize=0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        make_optimizer(algo, torch.zeros(3), **SMALL[algo], sigma=-1.0)
    with pytest.raises(ValueError, match="unknown algorithm 'bogus'"):
        make_optimizer("bogus", torch.zeros(3))


def test_odd_popsize_rejected_for_antithetic():
    for cls in (ES, ARS):
        with pytest.raises(ValueError, match="popsize must be even"):
            cls(torch.zeros(3), popsize=7)


def test_same_seed_same_trajectory_and_other_seed_differs(algo):
    a = run(make_optimizer(algo, torch.ones(5), seed=3, **SMALL[algo]), sphere, 5)
    b = run(make_optimizer(algo, torch.ones(5), seed=3, **SMALL[algo]), sphere, 5)
    c = run(make_optimizer(algo, torch.ones(5), seed=4, **SMALL[algo]), sphere, 5)
    assert torch.equal(a.center, b.center)
    assert not torch.equal(a.center, c.center)


def test_state_dict_round_trip_continues_identically(algo):
    fn = rastrigin
    a = run(make_optimizer(algo, torch.ones(6), seed=1, **SMALL[algo]), fn, 4)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make_optimizer(algo, torch.zeros(6), seed=99, **SMALL[algo])
    b.load_state_dict(torch.load(buf, weights_only=True))
    run(a, fn, 3)
    run(b, fn, 3)
    assert torch.equal(a.center, b.center)
    assert torch.equal(a.ask(), b.ask())


def test_state_dict_from_other_architecture_or_algorithm_is_refused(algo):
    a = make_optimizer(algo, torch.zeros(6), **SMALL[algo])
    with pytest.raises(ValueError, match="saved center has 6 parameters, this optimizer has 4"):
        make_optimizer(algo, torch.zeros(4), **SMALL[algo]).load_state_dict(a.state_dict())
    other = next(name for name in ALGORITHMS if name != algo)
    with pytest.raises(ValueError, match="cannot be loaded into"):
        make_optimizer(other, torch.zeros(6), **SMALL[other]).load_state_dict(a.state_dict())


def test_nonfinite_fitness_ranks_last_and_is_counted(algo):
    opt = make_optimizer(algo, torch.zeros(4), **SMALL[algo])
    params = opt.ask()
    fitness = sphere(params)
    fitness[0], fitness[1], fitness[2] = float("nan"), float("inf"), float("-inf")
    metrics = opt.tell(fitness)
    assert metrics["train/nonfinite_fitness"] == 3
    assert math.isfinite(metrics["train/fitness_mean"])
    assert torch.isfinite(opt.center).all()
    opt.ask()
    with pytest.raises(ValueError, match="all 20 fitness values are NaN or infinite"):
        opt.tell(torch.full((20,), float("nan")))


def test_a_float64_center_keeps_its_dtype_and_device(algo):
    """The center's dtype is the optimizer's (a float64 center once came back float32)."""
    opt = make_optimizer(algo, torch.full((3,), 0.5, dtype=torch.float64), device="cpu", **SMALL[algo])
    for _ in range(2):
        params = opt.ask()
        assert params.device.type == "cpu" and params.dtype == torch.float64
        opt.tell(sphere(params))
    assert opt.center.dtype == opt.best.dtype == torch.float64
    assert make_optimizer(algo, 3, **SMALL[algo]).center.dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    "algo_name, kwargs, generations",
    [
        ("es", {"popsize": 100, "sigma": 0.1, "lr": 0.1, "weight_decay": 0.0}, 150),
        ("ars", {"popsize": 100, "sigma": 0.1, "lr": 0.1, "top_directions": 25}, 150),
        ("ga", {"popsize": 200, "sigma": 0.1, "truncation": 20, "num_elites": 5}, 150),
    ],
)
def test_converges_on_sphere(algo_name, kwargs, generations):
    opt = run(make_optimizer(algo_name, torch.full((10,), 3.0), seed=0, **kwargs), sphere, generations)
    # from 90 at the start to below 0.05
    assert float(sphere(opt.center[None])) > -0.05


@pytest.mark.parametrize(
    "algo_name, kwargs",
    [
        ("es", {"popsize": 200, "sigma": 1.0, "lr": 0.05, "weight_decay": 0.0}),
        ("ars", {"popsize": 200, "sigma": 1.0, "lr": 0.2, "top_directions": 50}),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_reaches_global_basin_on_rastrigin(algo_name, kwargs, seed):
    # Start among the local optima; large sigma smooths the landscape (the search-gradient view).
    x0 = torch.rand(10, generator=torch.Generator().manual_seed(1)) * 6 - 3
    opt = run(make_optimizer(algo_name, x0, seed=seed, **kwargs), rastrigin, 300)
    assert opt.center.abs().max() < 0.5  # every coordinate in the basin of the global optimum at 0


def test_es_gradient_follows_a_linear_fitness():
    w = torch.randn(50, generator=torch.Generator().manual_seed(0))
    opt = ES(
        torch.zeros(50), popsize=2000, sigma=0.1, lr=0.01, weight_decay=0.0, optimizer="sgd", momentum=0.0
    )
    params = opt.ask()
    opt.tell(params @ w)
    step = opt.center  # one SGD step from 0 without momentum: lr * g
    cosine = torch.nn.functional.cosine_similarity(step, w, dim=0)
    assert cosine > 0.9


def test_ars_top_directions_only_uses_the_best():
    opt = ARS(torch.zeros(5), popsize=8, sigma=1.0, lr=1.0, top_directions=1)
    params = opt.ask()
    fitness = torch.zeros(8)
    fitness[2], fitness[6] = 3.0, 1.0  # direction 2 is the best: r+ = 3, r- = 1
    opt.tell(fitness)
    delta = (params[2] - params[6]) / 2.0  # sigma * delta_2 with sigma = 1
    # lr / (b * sigma_R) * (r+ - r-) * delta, sigma_R = std([3, 1]) = 1
    torch.testing.assert_close(opt.center, 2.0 * delta)


def test_ga_carries_and_reevaluates_elites():
    opt = GA(torch.zeros(3), popsize=10, sigma=0.5, truncation=3, num_elites=2, seed=0)
    gen0 = opt.ask()
    opt.tell(sphere(gen0))
    gen1 = opt.ask()
    best_two = sphere(gen0).argsort(descending=True)[:2]
    torch.testing.assert_close(gen1[:2], gen0[best_two])  # elites unmutated
    # a lucky first score is averaged with a bad re-evaluation: the elite's fitness is the mean
    fitness = sphere(gen1)
    fitness[0] = -100.0
    metrics = opt.tell(fitness)
    assert metrics["train/elite_evaluations"] == 2.0
    assert torch.equal(opt.center, gen1[1])


def test_centered_ranks():
    ranks = centered_ranks(torch.tensor([3.0, -1.0, 10.0, 0.0]))
    torch.testing.assert_close(ranks, torch.tensor([1 / 6, -0.5, 0.5, -1 / 6]))


def test_noise_table_is_shared_and_sliced():
    a, b = NoiseTable(seed=5, size=1000), NoiseTable(seed=5, size=1000)
    assert torch.equal(a.table, b.table)
    offsets = torch.tensor([0, 17, 990])
    rows = a.get(offsets, 10)
    for row, offset in zip(rows, offsets.tolist(), strict=True):
        assert torch.equal(row, a.table[offset : offset + 10])
    with pytest.raises(ValueError, match="too small for 300 parameters"):
        a.check_dim(300)


def test_members_are_regenerated_from_their_offsets():
    """What a worker holding the same noise table needs: the center (or parents), sigma and offsets."""
    for cls in (ES, ARS):
        opt = cls(torch.randn(9), popsize=6, sigma=0.3, seed=2)
        params = opt.ask()
        table = NoiseTable(opt.config.noise_seed, opt.config.noise_size)  # another holder of the table
        eps = table.get(opt.offsets, 9)
        torch.testing.assert_close(params, torch.cat([opt.center + 0.3 * eps, opt.center - 0.3 * eps]))
    ga = GA(torch.randn(9), popsize=6, sigma=0.3, truncation=2, num_elites=1, seed=2)
    first = ga.ask()
    ga.tell(sphere(first))
    parents = first[sphere(first).argsort(descending=True)[:2]]
    population = ga.ask_population()  # the elite (base 0), then children of parents 1 and 2
    children = materialize(population, NoiseTable(0, ga.config.noise_size))[1:]
    eps = NoiseTable(0, ga.config.noise_size).get(population.offsets[1:], 9)
    torch.testing.assert_close(children, parents[population.base_index[1:] - 1] + 0.3 * eps)
