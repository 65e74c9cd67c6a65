"""The compact population: any rows rebuilt from (bases, offsets, signs) and the noise table equal ask()'s."""

import dataclasses
import pickle

import pytest
import torch

from neuroevo.algorithms import ALGORITHMS, NoiseTable, NoiseTableOptimizer, make_optimizer, materialize

SMALL = {"popsize": 12}
GA_SMALL = {"num_elites": 2, "truncation": 4}
NOISE_TABLE = sorted(name for name, cls in ALGORITHMS.items() if issubclass(cls, NoiseTableOptimizer))


def _optimizer(name, dim=20, **overrides):
    noise = {"noise_size": 4096} if name in NOISE_TABLE else {}
    kwargs = {**SMALL, **noise, **(GA_SMALL if name == "ga" else {}), **overrides}
    center = torch.randn(dim, generator=torch.Generator().manual_seed(0))
    return make_optimizer(name, center, seed=7, **kwargs)


def _advance(opt, generations):
    fitness = torch.Generator().manual_seed(1)
    for _ in range(generations):
        opt.ask()
        opt.tell(torch.randn(opt.popsize, generator=fitness))


@pytest.mark.parametrize("name", NOISE_TABLE)
def test_shards_of_the_population_equal_ask_row_for_row(name):
    opt, twin = _optimizer(name), _optimizer(name)
    _advance(opt, 3)  # the GA then has re-evaluated elites and several parents
    _advance(twin, 3)
    params = opt.ask()
    population = twin.ask_population()
    noise = NoiseTable(population.noise_seed, population.noise_size)  # what a worker builds for itself
    shards = [materialize(population, noise, start, min(start + 5, len(population))) for start in range(0, 12, 5)]
    assert torch.equal(torch.cat(shards), params)
    assert len(population) == 12 and population.num_params == 20


@pytest.mark.parametrize("name", sorted(set(ALGORITHMS) - set(NOISE_TABLE)))
def test_optimizers_without_a_noise_table_ask_params_and_allocate_none(name):
    opt, twin = _optimizer(name), _optimizer(name)
    _advance(opt, 2)
    _advance(twin, 2)
    assert torch.equal(twin.ask_population(), opt.ask())
    assert not hasattr(opt, "noise")


def test_the_noise_table_grows_with_the_parameter_count_instead_of_capping_it():
    small = _optimizer("es", dim=20)
    assert small.noise.size == 4096  # as configured, wherever it fits
    big = _optimizer("es", dim=5_000, popsize=4)  # 4 x 5,000 floats do not fit in 4,096
    assert big.noise.size == 32_768 and big.ask().shape == (4, 5_000)


def test_mirrored_rows_are_center_plus_and_minus_sigma_eps():
    es = _optimizer("es")
    params = es.ask()
    eps = es.noise.get(es.offsets, es.num_params)
    assert torch.equal(params[:6], es.center + 0.02 * eps)
    assert torch.equal(params[6:], es.center - 0.02 * eps)


def test_ga_population_names_elites_and_children_by_parent_and_offset():
    ga = _optimizer("ga")
    _advance(ga, 2)
    population = ga.ask_population()
    assert population.bases.shape == (2 + 4, 20)  # elites, then parents: once per generation
    assert population.signs[:2].tolist() == [0, 0] and bool((population.signs[2:] == 1).all())
    rows = materialize(population, ga.noise)
    assert torch.equal(rows[:2], ga.elite_params)
    parent = ga.parent_params[population.base_index[2] - 2]
    child = parent + ga.config.sigma * ga.noise.get(population.offsets[2:3], 20)[0]
    assert torch.equal(rows[2], child)
    # the elites and parents kept as rows are exactly their lineages rebuilt from the starting point
    assert torch.equal(ga.elites.rows(ga.root, ga.noise), ga.elite_params)
    assert torch.equal(ga.parents.rows(ga.root, ga.noise), ga.parent_params)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_tell_after_ask_population_continues_like_tell_after_ask(name):
    dense, compact = _optimizer(name), _optimizer(name)
    fitness = torch.Generator().manual_seed(2)
    for _ in range(4):
        dense.ask()
        compact.ask_population()
        f = torch.randn(12, generator=fitness)
        assert dense.tell(f) == compact.tell(f)
    assert torch.equal(dense.center, compact.center) and torch.equal(dense.best, compact.best)


@pytest.mark.parametrize("name", ["es", "ars"])
def test_a_mirrored_population_is_the_center_plus_a_part_independent_of_the_parameter_count(name):
    sizes = []
    for dim in (100, 100_000):
        population = _optimizer(name, dim=dim, noise_size=2**20).ask_population()
        assert population.bases.shape == (1, dim)
        members = dataclasses.replace(population, bases=torch.empty(0))
        sizes.append(len(pickle.dumps(members)))
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_asking_changes_no_state_so_a_replica_made_after_an_ask_asks_the_same(name):
    """What a Ray worker relies on when it is sent the optimizer's state mid-generation (a Sync): the state
    after ``ask`` rebuilds the population that ``ask`` gave."""
    from neuroevo.distributed.worker import _replica, population_digest

    opt = _optimizer(name)
    for generation in range(3):
        population = opt.ask_population()
        state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in opt.state_dict().items()}
        replica = _replica(type(opt), state)
        assert population_digest(replica.ask_population()) == population_digest(population), generation
        opt.tell(torch.randn(opt.popsize, generator=torch.Generator().manual_seed(generation)))


@pytest.mark.parametrize("name", ["ga", "random_search"])
def test_a_replica_of_an_optimizer_with_random_starts_asks_the_same(name):
    """init = 'random': the init scale travels in the state, so a worker's replica draws the same networks."""
    from neuroevo.distributed.worker import _replica, population_digest

    scale = torch.linspace(0.0, 1.0, 20)
    opt = make_optimizer(name, torch.zeros(20), popsize=12, init="random", init_scale=scale, seed=4,
                         **({"truncation": 3, "num_elites": 2} if name == "ga" else {}))
    for generation in range(3):
        population = opt.ask_population()
        state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in opt.state_dict().items()}
        replica = _replica(type(opt), state)
        replica_population = replica.ask_population()
        assert population_digest(replica_population) == population_digest(population), generation
        assert torch.equal(materialize(replica_population, replica.noise), materialize(population, opt.noise))
        opt.tell(torch.randn(opt.popsize, generator=torch.Generator().manual_seed(generation)))
