"""The mujoco backend's machinery, on Hopper-v5: threads, masks, bad input, make_env integration."""

import numpy as np
import pytest
import torch

from neuroevo.envs import make_env, resolve_backend
from neuroevo.envs.mujoco import MujocoVectorEnv
from neuroevo.envs.mujoco.planar import Hopper


def test_make_env_picks_the_mujoco_backend_for_v5_tasks():
    assert resolve_backend("Hopper-v5") == "mujoco"
    assert resolve_backend("CartPole-v1") == "torch"
    env = make_env("Hopper-v5", 3, "cpu", num_threads=2)
    assert type(env) is MujocoVectorEnv and type(env.task) is Hopper and env.num_threads == 2
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 11) and obs.dtype == torch.float32
    assert env.max_episode_steps == 1000 and make_env("Hopper-v5", 1, "cpu", max_episode_steps=5).max_episode_steps == 5
    with pytest.raises(ValueError, match="no batched MuJoCo env 'Pusher-v5'"):
        make_env("Pusher-v5", 2, backend="mujoco")
    with pytest.raises(ValueError, match="num_threads must be positive"):
        make_env("Hopper-v5", 2, backend="mujoco", num_threads=0)


def test_thread_count_does_not_change_results():
    actions = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (50, 5, 3)), dtype=torch.float32)
    runs = []
    for threads in (1, 2):
        env = make_env("Hopper-v5", 5, "cpu", num_threads=threads)
        obs, _ = env.reset(seed=3)
        trace = [obs]
        for a in actions:
            trace.append(env.step(a)[0])
        runs.append(torch.stack(trace))
    assert torch.equal(runs[0], runs[1])


def test_start_state_depends_on_the_seed_not_the_slot():
    a = make_env("Hopper-v5", 3, "cpu")
    b = make_env("Hopper-v5", 1, "cpu")
    obs_a, _ = a.reset(seed=10)
    obs_b, _ = b.reset(seed=12)
    assert torch.equal(obs_a[2], obs_b[0])
    again, _ = a.reset(seed=10)
    assert torch.equal(again, obs_a)


def test_nonfinite_actions_are_zeroed_and_counted():
    env = make_env("Hopper-v5", 2, "cpu")
    env.reset(seed=0)
    twin = make_env("Hopper-v5", 2, "cpu")
    twin.reset(seed=0)
    bad = torch.tensor([[float("nan"), 0.5, float("inf")], [0.1, 0.2, 0.3]])
    obs, reward, _, _, info = env.step(bad)
    clean = torch.tensor([[0.0, 0.5, 0.0], [0.1, 0.2, 0.3]])
    obs_twin, _, _, _, _ = twin.step(clean)
    assert info["nonfinite_actions"].tolist() == [True, False]
    assert torch.equal(obs, obs_twin) and torch.isfinite(obs).all() and torch.isfinite(reward).all()


def test_wrong_action_shape_is_a_clear_error():
    env = make_env("Hopper-v5", 2, "cpu")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Hopper-v5: actions of shape \(2, 4\) do not fit"):
        env.step(torch.zeros(2, 4))


def test_physics_divergence_ends_only_that_env_with_nan_reward():
    env = make_env("Hopper-v5", 2, "cpu")
    env.reset(seed=0)
    env.datas[0].qvel[:] = 1e30  # an exploding state, as an unstable controller would produce
    obs, reward, terminated, _, info = env.step(torch.zeros(2, 3))
    assert info["diverged"].tolist() == [True, False]
    assert terminated[0] and torch.isnan(reward[0])
    assert not terminated[1] and torch.isfinite(reward[1])
    qpos = env.datas[0].qpos.copy()
    _, reward, _, _, _ = env.step(torch.zeros(2, 3))  # the batch goes on
    assert torch.isfinite(reward[1]) and reward[0] == 0
    assert np.array_equal(env.datas[0].qpos, qpos, equal_nan=True)  # a finished env is not stepped


def test_bad_input_is_counted_for_the_trainer():
    env = make_env("Hopper-v5", 2, "cpu")
    env.reset(seed=0)
    env.step(torch.tensor([[float("nan"), 0.0, 0.0], [0.0, 0.0, 0.0]]))
    env.datas[1].qvel[:] = 1e30
    env.step(torch.zeros(2, 3))
    assert env.problem_counts() == {"nonfinite_actions": 1, "diverged": 1}


def test_trainer_logs_bad_input_per_generation(monkeypatch):
    from neuroevo import Trainer, resolve_config

    config = resolve_config("Hopper-v5", {"run": {"generations": 2, "target": None, "eval_every": 2, "device": "cpu"},
                                          "ars": {"popsize": 4, "top_directions": 2}, "env": {"max_steps": 5}})
    original = MujocoVectorEnv.step

    def nan_first_action(env, actions):  # every env the trainer makes, wherever it makes them
        actions = actions.clone()
        actions[0, 0] = float("nan")
        return original(env, actions)

    monkeypatch.setattr(MujocoVectorEnv, "step", nan_first_action)
    result = Trainer(config).run()
    assert [row["train/nonfinite_actions"] for row in result.history] == [5, 5]
    assert all(row["train/diverged"] == 0 for row in result.history)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5"])
def test_batch_engine_matches_one_mjdata_per_env_exactly(env_id):
    """mujoco.batch (the default for tasks that do not observe contact forces) against one MjData per env stepped
    by mj_step: the same observations, rewards and flags bit for bit, through early ends and masked resets."""
    from neuroevo.envs.mujoco import TASKS
    from neuroevo.envs.mujoco.physics import BatchPhysics, DataPhysics, has_batch

    if not has_batch():
        pytest.skip("mujoco.batch needs MuJoCo 4.0")

    class PerEnvData(MujocoVectorEnv):
        per_env_data = True

    envs = [MujocoVectorEnv(TASKS[env_id], 4, num_threads=2, dtype=torch.float64),
            PerEnvData(TASKS[env_id], 4, num_threads=2, dtype=torch.float64)]
    assert isinstance(envs[0].physics, BatchPhysics) and isinstance(envs[1].physics, DataPhysics)
    actions = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (120, 4, envs[0].single_action_space.shape[0])))
    runs, ended = [], 0
    for env in envs:
        out = [env.reset(seed=3)[0]]
        for t, action in enumerate(actions):
            out += env.step(action * (3.0 if t < 40 else 1.0))[:4]  # strong actions end Hopper's episodes early
            ended += int(out[-2].sum())
            if t == 60:
                mask = env.episodes.terminated | torch.tensor([True, False, False, False])
                out.append(env.reset(options={"reset_mask": mask})[0])
        runs.append(out)
    assert env_id != "Hopper-v5" or ended > 0  # some episode did end
    for ours, reference in zip(*runs, strict=True):
        assert torch.equal(ours, reference)
