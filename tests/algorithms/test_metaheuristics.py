"""The classic metaheuristics on the population tensor: what each update rule does, convergence on
sphere and Rastrigin, and each one solving CartPole-v1 through the trainer. (The API, determinism and
state round-trip tests in test_optimizers.py run over every registered optimizer, these included.)"""

import math

import pytest
import torch
from objectives import rastrigin, run, sphere  # tests/algorithms/objectives.py

import neuroevo
from neuroevo.algorithms import DE, PSO, HillClimbing, RandomSearch, SimulatedAnnealing, make_optimizer

START = torch.full((10,), 3.0)  # sphere -90; on Rastrigin a local optimum, also -90


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("pso", {"popsize": 100, "sigma": 2.0}),
        ("de", {"popsize": 100, "sigma": 2.0}),
        ("de", {"popsize": 100, "sigma": 2.0, "strategy": "current-to-best/1/bin"}),
        ("sa", {"popsize": 100, "sigma": 0.1, "init_sigma": 2.0, "cooling": 0.8, "steps_per_temperature": 5}),
        ("hill_climbing", {"popsize": 100, "sigma": 0.1, "init_sigma": 3.0}),
    ],
)
def test_converges_on_sphere(name, kwargs):
    opt = run(make_optimizer(name, START, seed=0, **kwargs), sphere, 500)
    assert float(sphere(opt.center[None])) > -0.1


def test_random_search_is_the_floor_on_sphere():
    # It improves on its start by sampling alone, and stays far from what a search that learns reaches.
    opt = run(RandomSearch(START, popsize=100, sigma=2.0, seed=0), sphere, 500)
    assert -40.0 < float(sphere(opt.center[None])) < -1.0
    assert torch.equal(opt.root, START)  # the sampling distribution never moves


@pytest.mark.parametrize(
    "name, kwargs, floor",
    [
        ("pso", {"popsize": 100, "sigma": 2.0}, -10.0),
        # Storn and Price's CR = 0.1 for separable functions: Rastrigin is solved exactly
        ("de", {"popsize": 100, "sigma": 2.0, "crossover_rate": 0.1}, -0.01),
        ("sa", {"popsize": 100, "sigma": 0.5, "init_sigma": 2.0, "cooling": 0.8, "steps_per_temperature": 10}, -70.0),
        ("hill_climbing", {"popsize": 100, "sigma": 0.1, "init_sigma": 3.0}, -70.0),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_leaves_the_local_optimum_on_rastrigin(name, kwargs, floor, seed):
    opt = run(make_optimizer(name, START, seed=seed, **kwargs), rastrigin, 500)
    assert float(rastrigin(opt.center[None])) > floor


def test_pso_moves_particles_towards_their_bests():
    opt = PSO(torch.zeros(4), popsize=8, sigma=1.0, inertia=0.0, cognitive=0.0, social=1.0, seed=0)
    x0 = opt.ask()
    opt.tell(sphere(x0))
    top = int(sphere(x0).argmax())
    leader = x0[top]
    x1 = opt.ask()
    # inertia and cognitive off: x1 = x0 + r * (leader - x0), r ~ U(0, 1) per coordinate; the leader stays
    others = torch.arange(8) != top
    r = (x1 - x0)[others] / (leader - x0)[others]
    assert ((r >= 0) & (r <= 1)).all()
    torch.testing.assert_close(x1[top], leader)
    torch.testing.assert_close(opt.center, leader)


def test_pso_velocity_clamp_clamps_every_velocity_coordinate():
    opt = PSO(torch.zeros(4), popsize=8, sigma=10.0, velocity_clamp=0.01, seed=0)
    x0 = opt.ask()
    opt.tell(sphere(x0))
    assert ((opt.ask() - x0).abs() <= 0.01 + 1e-6).all()


def test_de_trial_replaces_its_target_only_when_at_least_as_good():
    opt = DE(torch.zeros(3), popsize=6, sigma=1.0, seed=0)
    population = opt.ask()
    opt.tell(torch.zeros(6))
    trials = opt.ask()
    fitness = torch.tensor([1.0, -1.0, 0.0, -5.0, 2.0, -0.5])
    opt.tell(fitness)
    kept = fitness < 0
    torch.testing.assert_close(opt.population[kept], population[kept])
    torch.testing.assert_close(opt.population[~kept], trials[~kept])
    torch.testing.assert_close(opt.center, trials[4])


def test_de_draws_distinct_partners():
    opt = DE(torch.zeros(2), popsize=4, seed=0)
    picks = opt._others(3)
    rows = torch.cat([torch.arange(4)[:, None], picks], 1)
    assert all(len(set(row.tolist())) == 4 for row in rows)


def test_simulated_annealing_acceptance_follows_the_temperature():
    def accepted_share(t0):
        opt = SimulatedAnnealing(torch.zeros(5), popsize=400, sigma=0.5, t0=t0, seed=0)
        opt.ask()
        opt.tell(torch.zeros(400))  # after the starting states: chains at fitness 0 ...
        opt.ask()
        return opt.tell(torch.full((400,), -1.0))["train/accepted"]  # ... every proposal worse by 1

    assert accepted_share(1e-3) == 0.0
    assert accepted_share(1.0) == pytest.approx(math.exp(-1.0), abs=0.08)
    assert accepted_share(1e3) > 0.99


def test_simulated_annealing_start_temperature_and_cooling():
    opt = SimulatedAnnealing(torch.zeros(3), popsize=50, sigma=0.1, cooling=0.5, steps_per_temperature=2, seed=0)
    fitness = torch.linspace(-3, 3, 50)
    opt.ask()
    assert opt.tell(fitness)["train/temperature"] == pytest.approx(float(fitness.std()))  # White (1984)
    temperatures = [opt.tell(sphere(opt.ask()))["train/temperature"] for _ in range(5)]
    t0 = float(fitness.std())
    assert temperatures == pytest.approx([t0, t0, t0 / 2, t0 / 2, t0 / 4])


def test_hill_climbing_restarts_stale_chains():
    opt = HillClimbing(torch.zeros(3), popsize=10, sigma=0.1, patience=3, seed=0)
    opt.ask()
    opt.tell(torch.zeros(10))
    restarts = []
    for _ in range(3):  # every proposal worse than its chain: no improvement
        opt.ask()
        restarts.append(opt.tell(torch.full((10,), -1.0))["train/restarts"])
    assert restarts == [0.0, 0.0, 10.0]
    assert torch.isinf(opt.chain_fitness).all()  # forgotten: the next proposal is accepted
    opt.ask()
    assert opt.tell(torch.full((10,), -7.0))["train/accepted"] == 1.0


@pytest.mark.parametrize("algo", ["pso", "de", "sa", "hill_climbing", "random_search"])
def test_solves_cartpole(algo):
    config = neuroevo.resolve_config("CartPole-v1", {"run": {"algo": algo, "seed": 0, "generations": 60}})
    result = neuroevo.Trainer(config).run()
    assert result.solved
