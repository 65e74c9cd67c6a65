"""EGGROLL (low-rank ES): its noise, its update against the full-rank definition, O(P) state and wire, training
from the library and the CLI, and resume."""

import dataclasses
import json
import math
import pickle

import pytest
import torch

from neuroevo.algorithms import EGGROLL, centered_ranks, make_optimizer, materialize
from neuroevo.cli import main
from neuroevo.policies import MLP
from neuroevo.policies.lowrank import ParamBlock, block_rank


def _mlp_optimizer(rank=3, popsize=10, hidden=(12,), **overrides):
    policy = MLP(5, 6, hidden=hidden)
    center = policy.init_params(torch.Generator().manual_seed(0))
    settings = {"popsize": popsize, "rank": rank, "sigma": 0.1, "noise_size": 8192, **overrides}
    return policy, make_optimizer("eggroll", center, layout=policy.param_layout(), seed=5, **settings)


def _perturbation_by_definition(opt, offset):
    """E for the noise at ``offset``, built here from the paper's definition: per matrix block the next
    rows x r floats are A, the next cols x r are B, E = A B^T / sqrt(r); other blocks take their own floats."""
    z, position, parts = opt.noise.table[offset:], 0, []
    for block in opt.layout:
        r = block_rank(block, opt.config.rank)
        if r:
            rows, cols = block.shape
            a = z[position : position + rows * r].view(rows, r)
            b = z[position + rows * r : position + (rows + cols) * r].view(cols, r)
            parts.append((a @ b.T / math.sqrt(r)).reshape(-1))
            position += (rows + cols) * r
        else:
            parts.append(z[position : position + block.numel])
            position += block.numel
    return torch.cat(parts)


def test_members_are_the_center_plus_and_minus_sigma_times_the_rank_r_perturbation():
    policy, opt = _mlp_optimizer()
    rows = opt.ask()
    assert [block_rank(b, 3) for b in opt.layout] == [3, 0, 3, 0]  # weights low-rank, biases dense
    for i, offset in enumerate(opt.offsets.tolist()):
        eps = _perturbation_by_definition(opt, offset)
        torch.testing.assert_close(rows[i], opt.center + 0.1 * eps)
        torch.testing.assert_close(rows[i + 5], opt.center - 0.1 * eps)
        w = eps[: 5 * 12].view(5, 12)
        assert torch.linalg.matrix_rank(w) == 3


@pytest.mark.parametrize("rank", [1, 16])
def test_the_noise_entries_have_unit_variance_whatever_the_rank(rank):
    layout = (ParamBlock(0, (200, 300)),)
    opt = EGGROLL(torch.zeros(60_000), layout=layout, rank=rank, popsize=8, noise_size=2**20, seed=1)
    entries = materialize(opt.ask_population(), opt.noise)  # [8, 60,000] = 0.02 * E
    assert abs(float((entries / 0.02).var()) - 1.0) < 0.1  # unscaled A B^T would have variance r


def test_the_update_equals_its_full_rank_definition():
    policy, opt = _mlp_optimizer(optimizer="sgd", momentum=0.0, lr=0.05, weight_decay=0.01, hidden=(12, 7))
    before = opt.center.clone()
    opt.ask_population()
    fitness = torch.randn(10, generator=torch.Generator().manual_seed(3))
    opt.tell(fitness)
    ranks = centered_ranks(fitness)
    eps = torch.stack([_perturbation_by_definition(opt, o) for o in opt.offsets.tolist()])  # [P/2, D]
    grad = ((ranks[:5] - ranks[5:])[:, None] * eps).sum(0) / (10 * 0.1)  # 1/(P sigma) sum_i (u_i - u_i+P/2) E_i
    torch.testing.assert_close(opt.center, before + 0.05 * (grad - 0.01 * before), rtol=1e-5, atol=1e-6)
    assert torch.linalg.matrix_rank((opt.center - before)[: 5 * 12].view(5, 12)) == 5  # the step is full rank


def test_state_and_wire_are_o_of_p_not_o_of_p_times_d():
    sizes = []
    for popsize in (8, 64):
        _, opt = _mlp_optimizer(popsize=popsize, hidden=(64, 64), noise_size=2**18)
        population = opt.ask_population()
        opt.tell(torch.randn(popsize))
        state = opt.state_dict()
        numel = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))
        assert numel <= 4 * opt.num_params + popsize  # center, best, Adam's m and v: no [P, D]
        compact = dataclasses.replace(population, bases=torch.empty(0))  # the center travels once per generation
        sizes.append(len(pickle.dumps(compact)))
    assert sizes[1] - sizes[0] < 20 * (64 - 8)  # a member is an offset and a sign


def test_a_replica_from_the_state_asks_the_same_low_rank_population():
    from neuroevo.distributed.worker import _replica, population_digest

    _, opt = _mlp_optimizer()
    opt.ask_population()
    opt.tell(torch.randn(10))
    population = opt.ask_population()
    state = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state_dict().items()}
    replica = _replica(EGGROLL, state)
    assert replica.layout == opt.layout and replica.noise_dim == opt.noise_dim < opt.num_params
    assert population_digest(replica.ask_population()) == population_digest(population)


def test_trains_a_classifier_from_the_library():
    pytest.importorskip("sklearn")
    from neuroevo.supervised import Budget, Classifiers, load_dataset, train_population

    problem = Classifiers(load_dataset("digits"), hidden=(32,), batch_size=64)
    rows = train_population(problem, "eggroll", Budget(forwards=64 * 64 * 40, seconds=60.0, log_every=20), seed=0,
                            popsize=64, sigma=0.02, lr=0.02, weight_decay=0.0, rank=2)
    assert rows[0]["test_accuracy"] < 0.3 and rows[-1]["test_accuracy"] > 0.75


def test_trains_from_the_cli_and_resume_follows_the_uninterrupted_trajectory(tmp_path, capsys):
    def args(out, generations):
        return ["train", "--env", "CartPole-v1", "--algo", "eggroll", "--generations", str(generations), "--popsize",
                "16", "--device", "cpu", "--seed", "2", "--out", str(out), "--quiet", "--set", "run.eval_episodes=3",
                "--set", "policy.kind=mlp", "--set", "policy.hidden=[16]", "--set", "eggroll.rank=2"]

    assert main(args(tmp_path / "full", 4)) == 0
    assert main(args(tmp_path / "cut", 2)) == 0
    assert main(["train", "--resume", str(tmp_path / "cut"), "--generations", "4", "--quiet"]) == 0
    rows = {d: [json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("full", "cut")}
    assert [r["train/fitness_mean"] for r in rows["cut"]] == [r["train/fitness_mean"] for r in rows["full"]]
    full, cut = (torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True) for d in ("full", "cut"))
    assert torch.equal(full["optimizer"]["center"], cut["optimizer"]["center"])
    assert full["optimizer"]["layout"][0] == [0, [4, 16]]  # the MLP's first weight matrix, low-rank
    assert max(r["train/fitness_max"] for r in rows["full"]) > 2 * rows["full"][0]["train/fitness_mean"]
