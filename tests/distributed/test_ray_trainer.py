"""The trainer on Ray workers (a real local instance with 2 CPUs): the same trajectory for 0 (local),
1 and 2 workers; a run whose workers are all lost writes a checkpoint and stops with a clear error;
``neuroevo train --workers``."""

import json

import pytest
import ray
import torch

import neuroevo
from neuroevo.cli import main
from neuroevo.distributed import WorkersLost, connect


@pytest.fixture(scope="module")
def cluster():
    started = connect(num_cpus=2)
    yield
    if started:
        ray.shutdown()


def _config(algo, generations=3):
    return neuroevo.resolve_config(
        "CartPole-v1",
        {
            "run": {"algo": algo, "seed": 11, "generations": generations, "target": None, "eval_episodes": 3,
                    "device": "cpu", "shard_size": 3},
            "env": {"max_steps": 80, "episodes": 2},
            "policy": {"kind": "mlp", "hidden": [8], "normalize_obs": True},
            algo: {"popsize": 12, **({"truncation": 4, "num_elites": 2} if algo == "ga" else {})},
        },
    )


def _trajectory(history):
    return [{k: v for k, v in row.items() if not k.startswith(("time/", "dist/"))} for row in history]


def test_the_trajectory_is_the_same_locally_and_on_one_or_two_workers(cluster):
    # (GA and ARS populations are compared member by member in test_ray_evaluator.py)
    runs = {}
    for workers in (0, 1, 2):
        trainer = neuroevo.Trainer(_config("es"), workers=workers)
        runs[workers] = (trainer.run(), trainer)
    (local, local_trainer), (one, one_trainer), (two, two_trainer) = runs[0], runs[1], runs[2]
    assert _trajectory(one.history) == _trajectory(local.history)
    assert _trajectory(two.history) == _trajectory(one.history)
    assert torch.equal(two.solution, local.solution) and torch.equal(one.solution, local.solution)
    # shards are fixed by the population, so the merged observation statistics are bit-identical for
    # any number of workers (and equal to the local ones up to float64 rounding)
    assert torch.equal(one_trainer.normalizer.m2, two_trainer.normalizer.m2)
    torch.testing.assert_close(two_trainer.normalizer.m2, local_trainer.normalizer.m2, rtol=1e-12, atol=0)
    assert {"dist/bytes_sent", "dist/idle_fraction", "dist/workers"} <= set(two.history[-1])
    assert two.history[-1]["dist/workers"] == 2 and two.history[-1]["dist/syncs"] == 0


def test_losing_every_worker_writes_a_checkpoint_and_stops_with_a_clear_error(cluster, tmp_path):
    trainer = neuroevo.Trainer(_config("es", generations=5), tmp_path / "run", workers=1)
    trainer.run_dir.mkdir()
    trainer.step()  # generation 1 on the worker
    evaluator = trainer._evaluator
    evaluator.replace_lost = False  # the cluster has nothing left to start a replacement on
    ray.kill(evaluator.worker_handles()[0])
    with pytest.raises(WorkersLost, match=r"every Ray worker is lost.*checkpoint of generation 1.*--resume"):
        trainer.run()
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["generation"] == 1
    resumed = neuroevo.Trainer.resume(tmp_path / "run", {"run": {"workers": 0}})
    assert resumed.generation == 1 and resumed.run().generations == 5


def test_cli_train_with_workers(cluster, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["train", "--env", "CartPole-v1", "--algo", "ars", "--generations", "2", "--popsize", "8",
                 "--set", "env.max_steps=50", "--device", "cpu", "--workers", "2", "--out", str(out), "--quiet"])
    assert code == 0
    assert "2 Ray workers" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["generation"] for row in rows] == [1, 2]
    assert all(row["dist/bytes_sent"] > 0 and 0.0 <= row["dist/idle_fraction"] <= 1.0 for row in rows)
    assert json.loads((out / "config.json").read_text())["run"]["workers"] == 2


def test_quick_chaos_worker_kills_match_the_local_run(cluster, tmp_path):
    """The chaos suite's Ray attack (--quick): a worker SIGKILLed with its shard in flight; the trajectory is the
    local run's. (The full attack found that replacements were capped at `workers` over the evaluator's whole life,
    then per generation: test_ray_evaluator.py's kill test.)"""
    import random

    from neuroevo.chaos import Settings, ray_attacks

    (outcome,) = ray_attacks.attack(Settings(tmp_path, quick=True, rng=random.Random(0)))
    assert outcome.tried == 1 and outcome.failures == [] and outcome.survived == 1
    assert outcome.details["2 workers"]["workers_lost_logged"] == 1
