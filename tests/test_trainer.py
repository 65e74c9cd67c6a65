"""End to end: learning on CartPole judged on gymnasium's own env, resume, checkpoints, bad input."""

import json
import os
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch

import neuroevo.checkpoint
from neuroevo import Trainer, load_policy, resolve_config
from neuroevo.checkpoint import read_policy
from neuroevo.playback import evaluate_checkpoint


def gymnasium_mean_return(module, env_id="CartPole-v1", episodes=100, seed=12345):
    """The deployed module alone, on gymnasium's own vector env: what a user would run."""
    env = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        with torch.no_grad():
            actions = module(torch.as_tensor(obs)).numpy()
        obs, reward, terminated, truncated, _ = env.step(actions)
        returns += reward * alive
        alive &= ~(terminated | truncated)
    env.close()
    return returns.mean()


@pytest.mark.parametrize("algo", ["es", "ga", "ars"])
def test_card_defaults_solve_cartpole_on_gymnasium(algo, tmp_path):
    config = resolve_config("CartPole-v1", {"run": {"algo": algo, "seed": 0, "device": "cpu"}})
    result = Trainer(config, tmp_path).run()
    assert result.solved
    module = load_policy(tmp_path / "best_policy.pt")
    assert isinstance(module, torch.nn.Module)
    assert gymnasium_mean_return(module) >= 475.0


@pytest.mark.parametrize(
    "card, algo",
    [(card, algo) for card in ("Acrobot-v1", "MountainCarContinuous-v0") for algo in ("es", "ga", "ars")]
    + [("Pendulum-v1", "es")],
)
def test_other_cards_reach_their_threshold_on_gymnasium(card, algo, tmp_path):
    config = resolve_config(card, {"run": {"algo": algo, "seed": 0, "device": "cpu"}})
    assert Trainer(config, tmp_path).run().solved
    summary = evaluate_checkpoint(tmp_path, episodes=100, backend="gymnasium")
    assert summary["mean"] >= config.env.threshold


def short_config(**run):
    overrides = {
        "run": {"algo": "es", "seed": 3, "device": "cpu", "generations": 6, "target": None, "eval_episodes": 5,
                "checkpoint_every": 3, **run},
        "policy": {"kind": "mlp", "hidden": [8]},
        "es": {"popsize": 8},
    }
    return resolve_config("CartPole-v1", overrides)


def rows_without_time(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full = Trainer(short_config(), tmp_path / "full").run()
    Trainer(short_config(generations=3), tmp_path / "cut").run()
    # A kill after generation 4 leaves the generation-3 checkpoint and one metrics row more.
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"generation": 4, "env_steps": -1}) + "\n")

    resumed = Trainer.resume(tmp_path / "cut", {"run": {"generations": 6}}).run()
    assert torch.equal(resumed.solution, full.solution)
    cut_rows, full_rows = (rows_without_time(tmp_path / d / "metrics.jsonl") for d in ("cut", "full"))
    assert cut_rows == full_rows
    final_full = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    final_cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert torch.equal(final_full["optimizer"]["center"], final_cut["optimizer"]["center"])
    assert torch.equal(final_full["normalizer"]["mean"], final_cut["normalizer"]["mean"])


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict | list | tuple):
        for value in obj.values() if isinstance(obj, dict) else obj:
            yield from _tensors(value)


@pytest.mark.parametrize("algo", ["ga", "random_search"])
def test_a_ga_checkpoint_names_its_members_and_best_policy_by_lineages_and_resumes_exactly(algo, tmp_path):
    """The paper's genomes in the checkpoint: no parameter vector (the root and init scale are the policy's, the
    members and the best evaluated policy lineages), read as a policy through best_policy.pt, and resumed on a
    machine that has only the checkpoint and the records (what an archive carries)."""
    settings = {"init": "random", "popsize": 8, **({"truncation": 2, "num_elites": 2, "elite_episodes": 2}
                                                   if algo == "ga" else {})}

    def config(generations):
        return resolve_config("CartPole-v1", {**short_config(algo=algo, generations=generations).to_dict(),
                                              algo: settings})

    full = Trainer(config(6), tmp_path / "full").run()
    Trainer(config(3), tmp_path / "cut").run()
    last, best = tmp_path / "cut" / "checkpoints" / "last.pt", tmp_path / "cut" / "best_policy.pt"
    state = torch.load(last, weights_only=True)
    assert state["solution"]["params"] is None
    assert [t.shape for t in _tensors(state) if t.numel() == full.solution.numel()] == []
    assert torch.equal(read_policy(last)[1], read_policy(best)[1])
    best.unlink()
    with pytest.raises(ValueError, match="names its best policy by its genome"):
        read_policy(last)
    resumed = Trainer.resume(tmp_path / "cut", {"run": {"generations": 6}}).run()
    assert torch.equal(resumed.solution, full.solution)
    assert torch.equal(read_policy(best)[1], read_policy(tmp_path / "full" / "best_policy.pt")[1])
    cut_rows, full_rows = (rows_without_time(tmp_path / d / "metrics.jsonl") for d in ("cut", "full"))
    assert cut_rows == full_rows


def test_a_ga_checkpoint_before_the_first_evaluation_names_the_starting_point(tmp_path):
    """Nothing evaluated yet: the best policy is the run's starting point, which a resume builds again."""
    config = resolve_config("CartPole-v1", {**short_config(algo="ga", eval_every=5).to_dict(),
                                            "ga": {"init": "random", "popsize": 8, "truncation": 2}})
    full = Trainer(config, tmp_path / "full").run()
    early = Trainer(config, tmp_path / "early")
    early.step()
    early.step()
    early.save_checkpoint()
    state = torch.load(tmp_path / "early" / "checkpoints" / "last.pt", weights_only=True)
    assert state["solution"]["params"] is None and state["solution"]["genome"] is None
    assert [t.shape for t in _tensors(state) if t.numel() == full.solution.numel()] == []
    with pytest.raises(ValueError, match="has evaluated no policy yet"):
        read_policy(tmp_path / "early" / "checkpoints" / "last.pt")
    resumed = Trainer.resume(tmp_path / "early").run()
    assert torch.equal(resumed.solution, full.solution) and resumed.best_eval_return == full.best_eval_return


def test_sigint_finishes_the_generation_checkpoints_and_resumes_exactly(tmp_path, monkeypatch):
    full = Trainer(short_config(), tmp_path / "full").run()
    original_step = Trainer.step

    def step_then_interrupt(self):
        row = original_step(self)
        if self.generation == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C in the middle of the run
        return row

    monkeypatch.setattr(Trainer, "step", step_then_interrupt)
    handler_before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup
    stopped = Trainer(short_config(), tmp_path / "cut").run()
    monkeypatch.setattr(Trainer, "step", original_step)
    assert stopped.interrupted and stopped.generations == 2
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["generation"] == 2
    assert signal.getsignal(signal.SIGINT) is handler_before  # handlers restored

    resumed = Trainer.resume(tmp_path / "cut").run()
    assert not resumed.interrupted and resumed.generations == 6
    assert torch.equal(resumed.solution, full.solution)


def test_same_seed_same_run_other_seed_differs(tmp_path):
    a = Trainer(short_config(generations=3)).run()
    b = Trainer(short_config(generations=3)).run()
    c = Trainer(short_config(generations=3, seed=4)).run()
    assert [r["train/fitness_mean"] for r in a.history] == [r["train/fitness_mean"] for r in b.history]
    assert not torch.equal(a.solution, c.solution) or a.history != c.history


def test_run_directory_contents_and_reference_evaluation(tmp_path):
    Trainer(short_config(generations=2), tmp_path).run()
    assert json.loads((tmp_path / "config.json").read_text())["run"]["algo"] == "es"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [1, 2]
    for key in ("env_steps", "time/wall", "train/fitness_mean", "train/fitness_max", "train/best_fitness",
                "eval/return_mean", "time/env_steps_per_s"):
        assert key in rows[-1]
    summary = evaluate_checkpoint(tmp_path, "CartPole-v1", episodes=5, backend="gymnasium")
    assert summary["episodes"] == 5 and len(summary["returns"]) == 5
    # the checkpoint and the run directory name the same policy, with the normalizer it was evaluated with
    from_ckpt = load_policy(tmp_path / "checkpoints" / "last.pt")
    obs = torch.randn(7, 4)
    assert torch.equal(from_ckpt(obs), load_policy(tmp_path)(obs))


def test_checkpoint_keeps_the_best_with_the_statistics_it_was_evaluated_with(tmp_path):
    trainer = Trainer(short_config(generations=4), tmp_path)
    trainer.run()  # with this seed the best is generation 3 of 4
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    _, ckpt_params, _, ckpt_norm, _ = read_policy(tmp_path / "checkpoints" / "last.pt")
    _, best_params, _, best_norm, best = read_policy(tmp_path)
    assert best["info"]["eval_return"] == max(r["eval/return_mean"] for r in rows)
    assert torch.equal(ckpt_params, best_params) and torch.equal(ckpt_norm.mean, best_norm.mean)
    assert int(best_norm.count) == best["info"]["env_steps"]  # statistics as of the best's generation
    obs = torch.randn(9, 4)
    assert torch.equal(trainer.best_policy()(obs), load_policy(tmp_path)(obs))


def test_continuous_task_with_normalizer_deploys_inside_the_box(tmp_path):
    config = resolve_config("Pendulum-v1", {
        "run": {"algo": "ars", "device": "cpu", "generations": 2, "eval_episodes": 2},
        "policy": {"kind": "mlp", "hidden": [16], "normalize_obs": True},
        "ars": {"popsize": 8, "top_directions": 2},
    })
    Trainer(config, tmp_path).run()
    module = load_policy(tmp_path)
    actions = module(100 * torch.randn(50, 3))
    assert actions.shape == (50, 1) and actions.abs().max() <= 2.0
    assert hasattr(module, "obs_mean")


def test_gymnasium_backend_trains(tmp_path):
    config = resolve_config("MountainCar-v0", {
        "run": {"algo": "ga", "device": "cpu", "generations": 2, "eval_episodes": 2},
        "env": {"max_steps": 50},
        "ga": {"popsize": 6, "truncation": 2, "num_elites": 1},
    })
    result = Trainer(config, tmp_path).run()
    assert result.generations == 2 and result.env_steps == 2 * 6 * 50


def test_kill_during_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = Trainer(short_config(generations=2), tmp_path)
    trainer.run()
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()

    def dying_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(neuroevo.checkpoint.torch, "save", dying_save)
    trainer.generation = 10
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.pt"]


def test_bad_inputs_get_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown env id 'NoSuchEnv-v9'"):
        Trainer(resolve_config("NoSuchEnv-v9", {"run": {"generations": 1}}))
    with pytest.raises(ValueError, match="popsize must be positive, got 0"):
        Trainer(resolve_config("CartPole-v1", {"es": {"popsize": 0}}))
    with pytest.raises(ValueError, match="unknown setting es.sigm"):
        resolve_config("CartPole-v1", {"es": {"sigm": 0.1}})
    with pytest.raises(ValueError, match="run.generations must be int"):
        resolve_config("CartPole-v1", {"run": {"generations": "ten"}})

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pt: not a readable neuroevo file"):
        load_policy(corrupt)
    with pytest.raises(ValueError, match="no such file"):
        load_policy(tmp_path / "missing.pt")

    Trainer(short_config(generations=1), tmp_path / "run").run()
    with pytest.raises(ValueError, match=r"already holds a run: continue it with Trainer.resume\(.*overwrite=True"):
        Trainer(short_config(generations=1), tmp_path / "run")
    with pytest.raises(ValueError, match="trained on CartPole-v1 with 4-dim observations; Pendulum-v1 gives 3"):
        evaluate_checkpoint(tmp_path / "run", "Pendulum-v1", episodes=2)
    with pytest.raises(ValueError, match=r"the checkpoint's policy \(mlp, \d+ parameters\) is not this trainer's"):
        Trainer.resume(tmp_path / "run", {"policy": {"hidden": [16]}, "run": {"generations": 2}})


def test_nan_rewards_rank_last_and_are_counted(tmp_path, monkeypatch):
    from neuroevo.envs.classic.cartpole import CartPole

    original = CartPole.dynamics

    def nan_for_first_env(self, state, action):
        state, reward, terminated = original(self, state, action)
        return state, torch.where(torch.arange(len(reward)) == 0, float("nan"), reward), terminated

    monkeypatch.setattr(CartPole, "dynamics", nan_for_first_env)
    with pytest.warns(RuntimeWarning, match="CartPole-v1: 1 episodes of generation 1 returned NaN or infinite"):
        result = Trainer(short_config(generations=2)).run()
    assert result.history[0]["train/nonfinite_episodes"] == 1
    assert result.history[0]["train/nonfinite_fitness"] == 1


def test_user_module_policy_trains_and_deploys(tmp_path):
    from neuroevo.policies import ModulePolicy

    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    policy = ModulePolicy(net, obs_dim=4)
    result = Trainer(short_config(generations=2), tmp_path, policy=policy).run()
    assert result.solution.shape == (policy.num_params,)
    with pytest.raises(ValueError, match=r"pass the module \(load_policy\(path, module=MyNet\(\)\)"):
        load_policy(tmp_path)
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    module = load_policy(tmp_path, module=fresh)
    _, params, _, normalizer, _ = read_policy(tmp_path, module=fresh)
    obs = torch.randn(5, 4)
    expected = policy(params[None], normalizer.normalize(obs)[None]).argmax(-1)[0]
    assert torch.equal(module(obs), expected)
