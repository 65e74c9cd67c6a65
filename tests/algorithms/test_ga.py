"""The GA's compact genomes (lineages of noise offsets, as in Such et al. 2017), the paper's elite rule
(candidates evaluated on extra episodes), and random starting points (the GA's generation 0, random search)."""

import io

import pytest
import torch
from objectives import run, sphere  # tests/algorithms/objectives.py

from neuroevo.algorithms import GA, RandomSearch, make_optimizer
from neuroevo.algorithms.lineages import Lineages

GA_SIZES = {"ga": {"truncation": 3, "num_elites": 2, "elite_episodes": 2}}


def _state_bytes(state: dict) -> int:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.tell()


@pytest.mark.parametrize("name", ["ga", "random_search"])
def test_the_compact_state_does_not_grow_with_the_parameter_count(name):
    """(C + T) x D floats before the lineages, then four D-vectors (root, init scale, center, best); the
    compact state (a checkpoint's) holds lineages of O(members x generations) numbers whatever D is."""
    sizes = []
    for dim in (100, 100_000):
        opt = make_optimizer(name, torch.zeros(dim), popsize=16, noise_size=4 * dim + 1000, seed=3, init="random",
                             init_scale=torch.full((dim,), 0.1), **GA_SIZES.get(name, {}))
        run(opt, lambda x: -(x[:, :5] - 1).pow(2).sum(-1), 4)
        sizes.append(_state_bytes(opt.compact_state_dict()))
        assert _state_bytes(opt.state_dict()) > 4 * 4 * dim  # the full state: loadable into any such optimizer
    assert sizes[0] == sizes[1] < 10_000


@pytest.mark.parametrize("name", ["ga", "random_search"])
def test_a_compact_state_continues_exactly_in_an_optimizer_built_the_same_way(name):
    scale = _layered_scale()
    kwargs = dict(popsize=12, sigma=0.05, init="random", init_scale=scale, **GA_SIZES.get(name, {}))
    opt = make_optimizer(name, torch.full((40,), 3.0), seed=1, **kwargs)
    run(opt, sphere, 4)
    buf = io.BytesIO()
    torch.save(opt.compact_state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    other = make_optimizer(name, torch.full((40,), 3.0), seed=9, **kwargs)
    other.load_state_dict(state)
    assert torch.equal(other.center, opt.center) and torch.equal(other.best, opt.best)
    run(opt, sphere, 2)
    run(other, sphere, 2)
    assert torch.equal(opt.center, other.center) and torch.equal(opt.ask(), other.ask())
    elsewhere = make_optimizer(name, torch.full((40,), 2.0), seed=1, **kwargs)  # another starting point
    with pytest.raises(ValueError, match="another starting point or init scale"):
        elsewhere.load_state_dict(state)


def test_lineages_rebuild_the_rows_bit_for_bit_after_a_restore():
    ga = GA(torch.randn(50), popsize=12, sigma=0.05, truncation=3, num_elites=2, seed=1)
    run(ga, sphere, 6)
    buf = io.BytesIO()
    torch.save(ga.state_dict(), buf)
    buf.seek(0)
    other = GA(torch.zeros(50), popsize=12, sigma=0.05, truncation=3, num_elites=2, seed=9)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.parent_params, ga.parent_params) and torch.equal(other.elite_params, ga.elite_params)
    run(ga, sphere, 3)
    run(other, sphere, 3)
    assert torch.equal(ga.center, other.center) and torch.equal(ga.ask(), other.ask())


def test_a_lineage_is_its_mutations_added_in_order():
    ga = GA(torch.randn(8), popsize=6, sigma=0.1, truncation=2, num_elites=1, seed=0)
    lineage = Lineages(torch.tensor([[5, 17, -1], [3, -1, -1]]), torch.tensor([[0.1, 0.2, 0.0], [0.3, 0.0, 0.0]],
                                                                                dtype=torch.float64))
    rows = lineage.rows(ga.root, ga.noise)
    eps = ga.noise.get(torch.tensor([5, 17, 3]), 8)
    assert torch.equal(rows[0], (ga.root + 0.1 * eps[0]) + 0.2 * eps[1])
    assert torch.equal(rows[1], ga.root + 0.3 * eps[2])


def test_the_papers_elite_rule_picks_the_best_candidate_by_its_extra_episodes():
    """elite_episodes=E: the top num_elites members come back as E copies each; the elite is the candidate with
    the best mean over its copies, not the one with the luckiest single episode."""
    ga = GA(torch.zeros(4), popsize=8, sigma=0.5, truncation=2, num_elites=3, elite_episodes=5, seed=0)
    assert ga.popsize == 8 + 3 * 5 and len(ga.ask()) == 23
    first = ga.ask()
    fitness = torch.arange(23, dtype=torch.float32) * 0  # generation 0: candidates are the start point
    fitness[:8] = torch.tensor([0, 9, 1, 8, 2, 7, 3, 4], dtype=torch.float32)
    ga.tell(fitness)
    candidates = first[[1, 3, 5]]  # the top 3 of the 8 members, best first
    second = ga.ask()
    assert torch.equal(second[8:].reshape(3, 5, 4), candidates[:, None].expand(3, 5, 4))  # E copies of each
    validation = torch.tensor([[1.0] * 5, [5.0] * 5, [3.0] * 5]).reshape(-1)  # candidate 2 (first[3]) is best
    metrics = ga.tell(torch.cat([torch.zeros(8), validation]))
    assert torch.equal(ga.center, first[3]) and metrics["train/elite_fitness"] == 5.0
    assert torch.equal(ga.ask()[0], first[3])  # carried unmutated as the next generation's first member


def test_the_papers_elite_rule_learns():
    ga = GA(torch.full((5,), 2.0), popsize=40, sigma=0.2, truncation=8, num_elites=4, elite_episodes=3, seed=0)
    noisy = torch.Generator().manual_seed(0)
    start = float(sphere(ga.center[None]))
    run(ga, lambda x: sphere(x) + 0.1 * torch.randn(len(x), generator=noisy), 25)
    assert float(sphere(ga.center[None])) > 0.5 * start  # -20 -> at least halfway to 0


def _layered_scale(dim: int = 40) -> torch.Tensor:
    """A policy-like init scale: two 'layers' of different std and a fixed entry (std 0, like a VBN gain)."""
    scale = torch.cat([torch.full((dim // 2,), 0.5), torch.full((dim // 2 - 1,), 0.05), torch.zeros(1)])
    return scale


def test_init_random_starts_from_independent_draws_of_the_init_distribution():
    """The paper's generation 0: popsize random networks, each root + init_scale * eps (its first seed), the
    fixed entries (std 0) kept from the starting point; later generations mutate them as usual."""
    scale = _layered_scale()
    center = torch.full((40,), 3.0)
    ga = GA(center, popsize=400, truncation=10, num_elites=2, sigma=0.01, init="random", init_scale=scale, seed=0)
    first = ga.ask()
    assert len(first) == 400 and torch.equal(first[:, -1], torch.full((400,), 3.0))
    std = first[:, :-1].std(0)
    assert 0.4 < float(std[:20].mean()) < 0.6 and 0.04 < float(std[20:].mean()) < 0.06
    assert abs(float(first[:, :-1].mean())) < 0.05  # centred on 0, not on the starting point
    ga.tell(sphere(first))
    second = ga.ask()
    top = first[sphere(first).argsort(descending=True)[:10]]
    nearest = torch.cdist(second[2:], top).min(1).values  # every child is a parent plus sigma-sized noise
    assert float(nearest.max()) < 0.01 * 40 ** 0.5 * 2


def test_init_random_lineages_rebuild_bit_for_bit_after_a_restore():
    scale = _layered_scale()
    kwargs = dict(popsize=12, truncation=3, num_elites=2, elite_episodes=2, sigma=0.05, init="random")
    ga = GA(torch.zeros(40), init_scale=scale, seed=1, **kwargs)
    run(ga, sphere, 4)
    buf = io.BytesIO()
    torch.save(ga.state_dict(), buf)
    buf.seek(0)
    other = GA(torch.zeros(40), init_scale=torch.ones(40), seed=9, **kwargs)  # the state's scale wins
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.parent_params, ga.parent_params) and torch.equal(other.elite_params, ga.elite_params)
    assert bool((other.parents.starts >= 0).all())  # every parent descends from a random start
    run(ga, sphere, 2)
    run(other, sphere, 2)
    assert torch.equal(ga.center, other.center) and torch.equal(ga.ask(), other.ask())


def test_init_random_is_refused_without_a_usable_scale():
    with pytest.raises(ValueError, match="init_scale"):
        GA(torch.zeros(4), popsize=8, truncation=2, num_elites=1, init="random")
    with pytest.raises(ValueError, match="init = 'center'"):
        GA(torch.zeros(4), popsize=8, truncation=2, num_elites=1, init="random", init_scale=torch.zeros(4))
    with pytest.raises(ValueError, match="init must be"):
        GA(torch.zeros(4), popsize=8, truncation=2, num_elites=1, init="fresh")


def test_random_search_as_the_paper_ran_it_draws_fresh_networks_every_generation():
    scale = _layered_scale()
    rs = RandomSearch(torch.full((40,), 3.0), popsize=200, init="random", init_scale=scale, seed=0)
    first = rs.ask()
    rs.tell(sphere(first))
    second = rs.ask()
    for rows in (first, second):  # each generation: draws around 0 with the init's std, not around the best
        assert 0.4 < float(rows[:, :20].std(0).mean()) < 0.6 and abs(float(rows[:, :-1].mean())) < 0.05
    assert torch.equal(rs.center, first[sphere(first).argmax()])  # the solution: the best network seen
