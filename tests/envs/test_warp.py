"""The warp backend (MuJoCo Warp) on warp's CPU device: the same returns as the mujoco backend, masks, bad
input, make_env integration, and a short ARS run that learns.

Kernels compile on first use (about a minute for all the tasks here on 2 cores, cached by warp in
``~/.cache/warp`` afterwards). Skipped where the ``neuroevo[warp]`` extra is not installed, except the
test of the error that asks for it.
"""

import sys

import mujoco
import numpy as np
import pytest
import torch

from neuroevo.envs import MUJOCO_ENVS, WARP_ENVS, make_env, resolve_backend
from neuroevo.envs.mujoco.planar import Hopper
from neuroevo.envs.mujoco.spatial import Ant
from neuroevo.envs.warp import WarpVectorEnv
from neuroevo.policies import make_policy, output_dim
from neuroevo.rollout import evaluate


@pytest.fixture(scope="module")
def warp():
    return pytest.importorskip("mujoco_warp")


def test_without_the_extra_make_env_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "warp", None)  # as if not installed: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "mujoco_warp", None)
    with pytest.raises(ValueError, match=r"^the warp backend needs MuJoCo Warp: pip install 'neuroevo\[warp\]'$"):
        make_env("Hopper-v5", 2, "cpu", backend="warp")


def test_make_env_builds_warp_envs_only_when_asked(warp):
    assert resolve_backend("Hopper-v5") == "mujoco"  # "auto" never picks warp
    env = make_env("Hopper-v5", 3, "cpu", backend="warp")
    assert type(env) is WarpVectorEnv and type(env.task) is Hopper  # the mujoco backend's task, composed
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 11) and obs.dtype == torch.float32 and env.physics_threads == 0
    assert set(WARP_ENVS) == set(MUJOCO_ENVS)
    with pytest.raises(ValueError, match="no MuJoCo Warp env 'Pusher-v5'"):
        make_env("Pusher-v5", 2, backend="warp")
    with pytest.raises(ValueError, match=r"Hopper-v5: actions of shape \(3, 4\) do not fit"):
        env.step(torch.zeros(3, 4))


class EllipticWarpVectorEnv(WarpVectorEnv):
    """The warp engine with the elliptic friction cone: see test_same_policy_same_returns_as_the_mujoco_backend."""

    def load_model(self, task):
        model = super().load_model(task)
        model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        return model


def _returns(env, params, steps, seed=7):
    policy = make_policy("linear", env.obs_dim, output_dim(env.single_action_space))
    result = evaluate(policy, params, env, episodes=1, max_steps=steps, seed=seed)
    return result.returns, result.episode_lengths[:, 0]


# Episodes of up to STEPS env steps: long enough for contacts and (Hopper, Walker2d, the pendulums, Humanoid)
# terminations, short enough that float32 and float64 trajectories of contact dynamics have not drifted apart.
STEPS = 25
#: policy weights ~ N(0, SCALE^2): actions that vary without saturating on every step
SCALE = 0.1
TASKS = ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Swimmer-v5", "Ant-v5", "Humanoid-v5", "InvertedPendulum-v5",
         "InvertedDoublePendulum-v5", "Reacher-v5"]


@pytest.mark.parametrize("env_id", TASKS)
def test_same_policy_same_returns_as_the_mujoco_backend(warp, env_id):
    """Member by member, the same linear policy from the same start states: equal episode lengths, and
    returns equal within float32 rounding of the physics (MuJoCo Warp computes in float32).

    Two engine differences are set aside here so that the comparison tests this backend (its task code,
    resets, masks), not MuJoCo Warp: Humanoid runs Newton on both sides (MuJoCo Warp has no PGS, the
    model's solver), and Ant runs with elliptic friction cones on both. With the -v5 model's pyramidal
    cones MuJoCo and MuJoCo Warp differ in the contact tangent frame of a capsule on a plane (MuJoCo takes
    the capsule axis, MuJoCo Warp a frame from the normal alone), so the same step gives different
    friction forces and Ant's trajectories part at the first touchdown (qpos ~1e-2 within 10 steps).
    """
    popsize = 3
    if env_id == "Ant-v5":
        warp_env = EllipticWarpVectorEnv(Ant, popsize, device="cpu")
    else:
        warp_env = WARP_ENVS[env_id](popsize, device="cpu")
    mujoco_env = MUJOCO_ENVS[env_id](popsize, device="cpu", num_threads=1)
    if env_id == "Humanoid-v5":
        assert warp_env.model.opt.solver == mujoco.mjtSolver.mjSOL_NEWTON  # the warp engine's switch (SOLVERS)
        mujoco_env.model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    if env_id == "Ant-v5":
        mujoco_env.model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    policy = make_policy("linear", warp_env.obs_dim, output_dim(warp_env.single_action_space))
    params = SCALE * torch.randn(popsize, policy.num_params, generator=torch.Generator().manual_seed(0))
    returns, lengths = _returns(warp_env, params, STEPS)
    expected, expected_lengths = _returns(mujoco_env, params, STEPS)
    assert torch.equal(lengths, expected_lengths)
    assert torch.isfinite(returns).all()
    torch.testing.assert_close(returns, expected, rtol=1e-3, atol=1e-3 * STEPS)


def test_pyramidal_ant_parts_from_mujoco_at_touchdown(warp):
    """The documented engine difference itself (see above): with the model's own pyramidal cones the
    first steps agree to float32 rounding, and the trajectories part once the legs touch the ground."""
    warp_env, mujoco_env = WARP_ENVS["Ant-v5"](1, device="cpu"), MUJOCO_ENVS["Ant-v5"](1, device="cpu")
    warp_env.reset(seed=0)
    mujoco_env.reset(seed=0)
    gaps = []
    for _ in range(10):
        warp_env.step(torch.zeros(1, 8))
        mujoco_env.step(torch.zeros(1, 8))
        qpos = torch.as_tensor(mujoco_env.datas[0].qpos)
        gaps.append(float((warp_env._views["qpos"][0].double() - qpos).abs().max()))
    assert gaps[0] < 1e-5 and max(gaps) > 1e-3


def test_reset_mask_resets_only_those_worlds(warp):
    env, twin = WARP_ENVS["Hopper-v5"](3, device="cpu"), WARP_ENVS["Hopper-v5"](3, device="cpu")
    reference = MUJOCO_ENVS["Hopper-v5"](3, device="cpu", num_threads=1)
    for e in (env, twin, reference):
        e.reset(seed=5)
    push = torch.tensor([[0.5, -0.5, 0.5]]).expand(3, 3)
    for _ in range(4):
        before, *_ = env.step(push)
        twin.step(push)
        reference.step(push)
    mask = torch.tensor([False, True, False])
    obs, _ = env.reset(options={"reset_mask": mask})
    assert torch.equal(obs[[0, 2]], before[[0, 2]])  # the worlds left alone keep their observation
    # world 1's second episode starts from the state the mujoco backend draws for it (float32 rounding)
    torch.testing.assert_close(obs[1], reference.reset(options={"reset_mask": mask})[0][1], rtol=0, atol=1e-6)
    for _ in range(3):  # and the others carry on exactly as their twins, which were never reset
        obs, *_ = env.step(push)
        expected, *_ = twin.step(push)
    assert torch.equal(obs[[0, 2]], expected[[0, 2]])


def test_the_start_state_of_an_episode_depends_on_its_seed_and_count_only(warp):
    a, b = WARP_ENVS["Reacher-v5"](3, device="cpu"), WARP_ENVS["Reacher-v5"](1, device="cpu", max_episode_steps=5)
    assert a.max_episode_steps == 50 and b.max_episode_steps == 5  # a shorter limit changes no start state
    obs_a, _ = a.reset(seed=10)
    obs_b, _ = b.reset(seed=12)
    assert torch.equal(obs_a[2], obs_b[0])
    reference = MUJOCO_ENVS["Reacher-v5"](3, device="cpu")
    obs_ref, _ = reference.reset(seed=10)  # the mujoco backend's start states, to float32 rounding
    torch.testing.assert_close(obs_a, obs_ref, rtol=0, atol=1e-6)


def test_nonfinite_actions_are_zeroed_and_counted_as_by_the_mujoco_backend(warp):
    env, twin = WARP_ENVS["Hopper-v5"](2, device="cpu"), WARP_ENVS["Hopper-v5"](2, device="cpu")
    env.reset(seed=0)
    twin.reset(seed=0)
    obs, reward, _, _, info = env.step(torch.tensor([[float("nan"), 0.5, float("inf")], [0.1, 0.2, 0.3]]))
    expected, expected_reward, _, _, _ = twin.step(torch.tensor([[0.0, 0.5, 0.0], [0.1, 0.2, 0.3]]))
    assert info["nonfinite_actions"].tolist() == [True, False]
    assert torch.equal(obs, expected) and torch.equal(reward, expected_reward) and torch.isfinite(obs).all()
    assert env.problem_counts() == {"nonfinite_actions": 1, "diverged": 0, "buffer_overflows": 0}


def test_a_diverged_world_ends_with_nan_reward_and_the_batch_goes_on(warp):
    env = WARP_ENVS["Hopper-v5"](2, device="cpu")
    env.reset(seed=0)
    env._views["qvel"][0] = float("inf")  # an exploded state, as an unstable controller would produce
    obs, reward, terminated, _, info = env.step(torch.zeros(2, 3))
    assert info["diverged"].tolist() == [True, False]
    assert terminated[0] and torch.isnan(reward[0]) and not terminated[1] and torch.isfinite(reward[1])
    # the frozen world is held at a finite state, so it cannot poison the batched solver
    assert torch.isfinite(env._views["qpos"][0]).all() and torch.isfinite(env._views["qvel"][0]).all()
    qpos = env._views["qpos"][0].clone()
    for _ in range(3):
        _, reward, _, _, _ = env.step(torch.zeros(2, 3))
        assert torch.isfinite(reward[1]) and reward[0] == 0
    assert torch.equal(env._views["qpos"][0], qpos)  # a finished world is stepped with the batch, then put back
    assert env.problem_counts()["diverged"] == 1


def test_worlds_that_outgrow_their_constraint_buffers_are_counted(warp):
    env = WARP_ENVS["Hopper-v5"](2, device="cpu", njmax=1)  # room for one constraint row per world
    env.reset(seed=0)
    flags = torch.stack([env.step(torch.zeros(2, 3))[4]["buffer_overflow"] for _ in range(5)])
    rows = torch.as_tensor(env._d.nefc.numpy())  # the rows each world needed at the last step
    assert flags[-1].tolist() == (rows > 1).tolist() and flags.any()
    assert env.problem_counts()["buffer_overflows"] == int(flags.sum())
    roomy = WARP_ENVS["Hopper-v5"](2, device="cpu")  # MuJoCo Warp's default buffers: no overflow
    roomy.reset(seed=0)
    assert not any(roomy.step(torch.zeros(2, 3))[4]["buffer_overflow"].any() for _ in range(5))


def test_reward_terms_are_gymnasiums_info_entries(warp):
    env = WARP_ENVS["Ant-v5"](2, device="cpu")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(torch.zeros(2, 8))
    terms = info["reward_terms"]
    total = terms["reward_forward"] + terms["reward_survive"] + terms["reward_ctrl"] + terms["reward_contact"]
    torch.testing.assert_close(reward, total)
    assert all(t.device == env.device and t.shape == (2,) for t in terms.values())


def _ars_on_hopper(backend, run_dir):
    from neuroevo import Trainer, resolve_config

    # The card's ARS V2-t on short episodes (warp's CPU device takes ~0.1 s per env step, whatever the batch),
    # evaluated once, at the end
    overrides = {
        "run": {"algo": "ars", "seed": 0, "device": "cpu", "generations": 6, "target": None, "eval_every": 6,
                "eval_episodes": 2},
        "env": {"backend": backend, "max_steps": 30},
        "ars": {"popsize": 8, "top_directions": 4},
    }
    history = Trainer(resolve_config("Hopper-v5", overrides), run_dir).run().history
    return [row["train/fitness_mean"] for row in history], history[-1]["eval/return_mean"]


def test_short_ars_run_on_hopper_improves_as_on_the_mujoco_backend(warp, tmp_path):
    fitness, final = _ars_on_hopper("warp", tmp_path / "warp")
    # the population's mean fitness (return less the card's shift of 1 a step) rises: -3.0 -> 1.3, 6.3
    assert np.isfinite(fitness).all() and max(fitness[-2:]) > fitness[0] + 5
    # the same run on the mujoco backend: the same populations, so the same curve and final policy's return
    # (37.3) to float32 rounding
    expected_fitness, expected_final = _ars_on_hopper("mujoco", tmp_path / "mujoco")
    np.testing.assert_allclose(fitness, expected_fitness, rtol=1e-3, atol=0.05)
    np.testing.assert_allclose(final, expected_final, rtol=1e-3, atol=0.05)
