"""Nelder-Mead and ACO_R: what each update rule does, convergence on sphere and Rastrigin, the large-D
simplex, and each one solving CartPole-v1 through the trainer. (The API, determinism and state round-trip
tests in test_optimizers.py run over every registered optimizer, these included.)"""

import math

import pytest
import torch
from objectives import rastrigin, run, sphere  # tests/algorithms/objectives.py

import neuroevo
from neuroevo.algorithms import ACOR, NelderMead, make_optimizer
from neuroevo.algorithms.aco import mean_distances, rank_weights

START = torch.full((10,), 3.0)  # sphere -90; on Rastrigin a local optimum, -89.5


# -- convergence -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, kwargs, generations, floor",
    [
        ("nelder_mead", {"popsize": 20, "sigma": 1.0}, 300, -1e-4),
        ("aco_r", {"popsize": 100, "sigma": 2.0}, 300, -1e-6),
    ],
)
def test_converges_on_sphere(name, kwargs, generations, floor):
    opt = run(make_optimizer(name, START, seed=0, **kwargs), sphere, generations)
    assert float(sphere(opt.center[None])) > floor


@pytest.mark.parametrize(
    "name, kwargs, floor",
    [
        # a local method: restarts (a fresh simplex of spread sigma around the best vertex) leave local optima
        ("nelder_mead", {"popsize": 20, "sigma": 3.0}, -45.0),
        ("aco_r", {"popsize": 100, "sigma": 2.0}, -12.0),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_leaves_the_local_optimum_on_rastrigin(name, kwargs, floor, seed):
    opt = run(make_optimizer(name, START, seed=seed, **kwargs), rastrigin, 500)
    assert float(rastrigin(opt.center[None])) > floor


@pytest.mark.parametrize("algo", ["nelder_mead", "aco_r"])
def test_solves_cartpole(algo):
    config = neuroevo.resolve_config("CartPole-v1", {"run": {"algo": algo, "seed": 0, "generations": 30}})
    result = neuroevo.Trainer(config).run()
    assert result.solved


# -- Nelder-Mead's rules -----------------------------------------------------------------------------
def _evaluated_simplex(**kwargs):
    """A 2-D NelderMead (3 vertices, one moving: the classic method) whose simplex is evaluated, with fitness
    3, 2, 1 (best first), and the trial points of its next generation [P, 2]."""
    opt = NelderMead(torch.zeros(2), popsize=4, sigma=1.0, seed=0, **kwargs)
    opt.ask()
    opt.tell(torch.tensor([3.0, 2.0, 1.0, 3.0]))  # the three vertices, then the padding (vertex 0 again)
    vertices = opt.simplex.clone()
    return opt, vertices, opt.ask()


def test_nelder_mead_trial_points_follow_the_equations():
    opt, x, trials = _evaluated_simplex()
    c = x[:2].mean(0)  # centroid of the vertices kept
    r = c + (c - x[2])
    torch.testing.assert_close(trials, torch.stack([r, c + 2 * (r - c), c + 0.5 * (r - c), c + 0.5 * (x[2] - c)]))


@pytest.mark.parametrize(
    "fitness, expected",
    [
        ([2.5, 0.0, 0.0, 0.0], 0),  # f_worst-but-one < f(r) < f_best: the reflection replaces the worst vertex
        ([4.0, 5.0, 0.0, 0.0], 1),  # f(r) beyond the best and f(e) better still: expansion
        ([4.0, 3.5, 0.0, 0.0], 0),  # f(r) beyond the best, f(e) worse than f(r): the reflection
        ([1.5, 0.0, 1.7, 0.0], 2),  # f_worst < f(r) <= f_next: outside contraction, kept as it beats r
        ([0.5, 0.0, 0.0, 1.2], 3),  # f(r) <= f_worst: inside contraction, kept as it beats the worst vertex
    ],
)
def test_nelder_mead_replaces_the_worst_vertex(fitness, expected):
    opt, x, trials = _evaluated_simplex()
    metrics = opt.tell(torch.tensor(fitness))
    assert metrics["train/replaced"] == 1.0
    moved = opt.simplex_fitness == fitness[expected]
    torch.testing.assert_close(opt.simplex[moved][0], trials[expected])
    kept = [v for v in x[:2]]
    assert all(any(torch.equal(v, w) for w in opt.simplex) for v in kept)
    assert opt.simplex_fitness.tolist() == sorted(opt.simplex_fitness.tolist(), reverse=True)


def test_nelder_mead_shrinks_when_nothing_improves():
    opt, x, trials = _evaluated_simplex()
    opt.tell(torch.tensor([0.5, 0.0, 0.0, 0.9]))  # reflection and inside contraction no better than the worst
    torch.testing.assert_close(opt.simplex[1:], x[0] + 0.5 * (x[1:] - x[0]))
    assert torch.isnan(opt.simplex_fitness[1:]).all() and opt.simplex_fitness[0] == 3.0
    torch.testing.assert_close(opt.ask()[:2], opt.simplex[1:])  # the shrunk vertices are evaluated next
    torch.testing.assert_close(opt.center, x[0])


def test_nelder_mead_padding_re_evaluates_the_best_vertex():
    opt = NelderMead(torch.zeros(2), popsize=8, sigma=1.0, seed=0)  # 3 vertices, then 4 trial points + 4 pads
    first = opt.ask()
    torch.testing.assert_close(first[3:], first[:1].expand(5, -1))
    opt.tell(torch.tensor([3.0, 2.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]))
    assert float(opt.simplex_fitness[0]) == pytest.approx(13 / 6)  # vertex 0: the mean of its six evaluations
    assert opt.evaluations[0] == 6


def test_nelder_mead_restarts_a_collapsed_simplex():
    opt = NelderMead(torch.zeros(2), popsize=4, sigma=1.0, restart_tol=0.3, seed=0)
    opt.ask()
    opt.tell(torch.tensor([3.0, 2.0, 1.0, 3.0]))
    restarts = []
    for _ in range(4):  # nothing ever improves: shrink, evaluate the shrunk vertices, shrink, evaluate
        opt.ask()
        restarts.append(opt.tell(torch.zeros(4))["train/restarts"])
    assert restarts == [0.0, 0.0, 0.0, 1.0]  # sizes 1/2, then 1/4 of the initial size: below 0.3, a restart
    best = opt.simplex[0].clone()
    assert opt.simplex.shape[0] == 1  # the best vertex; the next ask spans a new simplex around it
    opt.ask()
    assert opt.simplex.shape[0] == 3 and torch.isnan(opt.simplex_fitness[1:]).all()
    assert torch.equal(opt.simplex[0], best)
    distances = (opt.simplex[1:] - best).norm(dim=1)
    torch.testing.assert_close(distances, torch.full((2,), math.sqrt(2.0)))  # sigma sqrt(D) again


def test_nelder_mead_spans_a_subspace_for_large_d():
    d = 10_000
    opt = NelderMead(torch.zeros(d), popsize=64, sigma=0.01, max_dims=32, seed=0)
    params = opt.ask()
    assert params.shape == (64, d) and opt.simplex.shape == (33, d)
    directions = (opt.simplex[1:] - opt.simplex[0]) / opt.initial_size
    torch.testing.assert_close(directions @ directions.T, torch.eye(32), atol=1e-5, rtol=0)
    assert opt.restart_tol == 0.1  # a subspace simplex moves on early
    start = float(sphere(torch.ones(d)[None]))
    opt = run(NelderMead(torch.ones(d), popsize=64, sigma=0.01, max_dims=32, seed=0), sphere, 60)
    assert float(sphere(opt.center[None])) > start + 1.0 and opt.restarts >= 1


# -- ACO_R's rules -----------------------------------------------------------------------------------
def test_aco_rank_weights_are_the_gaussian_kernel_of_the_rank():
    k, q = 10, 0.3
    w = rank_weights(k, q)
    for rank in range(1, k + 1):  # Socha and Dorigo's omega_l, l = 1..k
        expected = math.exp(-((rank - 1) ** 2) / (2 * q**2 * k**2)) / (q * k * math.sqrt(2 * math.pi))
        assert float(w[rank - 1]) == pytest.approx(expected)
    assert float(rank_weights(50, 1e-4)[1]) == 0.0  # the paper's q = 1e-4: only the best solution guides


def test_aco_guides_are_drawn_by_rank_weight():
    opt = ACOR(torch.zeros(2), popsize=20_000, sigma=1.0, archive_size=10, locality=0.3, seed=0)
    opt.ask()
    opt.tell(-torch.arange(20_000.0))
    opt.ask()
    share = torch.bincount(opt.guides, minlength=10) / 20_000
    w = rank_weights(10, 0.3)
    torch.testing.assert_close(share.double(), w / w.sum(), atol=0.01, rtol=0)


def test_aco_mean_distances_match_the_direct_sum():
    archive = torch.randn(7, 5, generator=torch.Generator().manual_seed(0)) * 3 + 100
    direct = (archive[None] - archive[:, None]).abs().sum(1) / 6
    torch.testing.assert_close(mean_distances(archive), direct, atol=1e-4, rtol=1e-5)


def test_aco_sampling_spread_follows_xi():
    opt = ACOR(torch.zeros(3), popsize=40_000, sigma=1.0, archive_size=4, locality=1e-4, evaporation=0.5, seed=0)
    archive = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [3.0, -2.0, 0.5], [-1.0, 4.0, 1.0]])
    opt.archive, opt.archive_fitness = archive, torch.tensor([4.0, 3.0, 2.0, 1.0])
    samples = opt.ask()
    assert (opt.guides == 0).all()  # q = 1e-4: every ant follows the best solution
    expected = 0.5 * (archive - archive[0]).abs().sum(0) / 3  # xi * mean distance to the other solutions
    torch.testing.assert_close(samples.mean(0), archive[0], atol=0.03, rtol=0)
    torch.testing.assert_close(samples.std(0), expected, atol=0.0, rtol=0.02)


def test_aco_archive_keeps_the_k_best():
    opt = ACOR(torch.zeros(2), popsize=4, sigma=1.0, archive_size=6, seed=0)
    first = opt.ask()
    opt.tell(torch.tensor([1.0, 5.0, 3.0, 2.0]))
    assert opt.archive.shape == (4, 2)  # still filling: the next generation samples around the start again
    second = opt.ask()
    assert opt.guides.numel() == 0
    metrics = opt.tell(torch.tensor([4.0, 0.0, 6.0, -1.0]))
    pool = torch.cat([first, second])
    expected = pool[torch.tensor([6, 1, 4, 2, 3, 0])]  # fitness 6, 5, 4, 3, 2, 1: 0 and -1 dropped
    torch.testing.assert_close(opt.archive, expected)
    assert opt.archive_fitness.tolist() == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert metrics["train/archive_entered"] == 2.0
    torch.testing.assert_close(opt.center, second[2])
    third = opt.ask()  # archive full: ants around the archive
    assert opt.guides.numel() == 4 and third.shape == (4, 2)
    opt.tell(torch.full((4,), 10.0))
    assert opt.archive_fitness.tolist() == [10.0, 10.0, 10.0, 10.0, 6.0, 5.0]


# -- settings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (NelderMead, {"popsize": 3}, "popsize must be at least 4"),
        (NelderMead, {"expansion": 0.9}, "expansion must exceed 1 and reflection"),
        (NelderMead, {"reflection": 0.0}, "reflection must be positive"),
        (NelderMead, {"contraction": 1.0}, r"contraction and shrink must be in \(0, 1\)"),
        (NelderMead, {"shrink": 0.0}, r"contraction and shrink must be in \(0, 1\)"),
        (NelderMead, {"max_dims": 0}, "max_dims must be at least 1"),
        (NelderMead, {"restart_tol": 1.0}, r"restart_tol must be in \[0, 1\)"),
        (ACOR, {"archive_size": 1}, "archive_size must be at least 2"),
        (ACOR, {"locality": 0.0}, r"locality \(q\) must be positive"),
        (ACOR, {"evaporation": -0.85}, r"evaporation \(xi\) must be positive"),
    ],
)
def test_bad_config_is_a_clear_error(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(torch.zeros(3), **kwargs)
