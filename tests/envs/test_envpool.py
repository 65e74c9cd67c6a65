"""EnvPool (the bench's anchor, not a backend): why it cannot keep the env contract and where it parts from
gymnasium. These pin the figures of docs/guides/envpool.md (scripts/envpool_parity.py measures them in full)."""

from __future__ import annotations

import numpy as np
import pytest

envpool = pytest.importorskip("envpool")

from neuroevo.bench.envpool_parity import stepwise  # noqa: E402


def first_disagreement(env_id: str, seed: int, steps: int) -> tuple[int | None, int]:
    """EnvPool against gymnasium from the noiseless start under the same seeded random actions
    (:func:`~neuroevo.bench.envpool_parity.stepwise`): the first step past the parity tolerance or with other
    flags (None: none), and the steps compared (to the first episode end)."""
    result = stepwise(env_id, seed, steps)
    return result["first_step_over_tol"], result["steps"]


def test_hopper_agrees_with_gymnasium_step_by_step():
    """Hopper-v5: whole episodes (falls at steps 14-27) within the parity tolerance."""
    for seed in (0, 1, 2):
        first, compared = first_disagreement("Hopper-v5", seed, 1000)
        assert first is None and compared > 10, (seed, first, compared)


def test_halfcheetah_parts_from_gymnasium_within_a_hundred_steps():
    """HalfCheetah-v5: equal to round-off at first, past the tolerance at step 54 (seed 0): gymnasium itself
    parts from a copy nudged by 1e-15 at step 48-70, so any difference in EnvPool's MuJoCo build grows."""
    first, _ = first_disagreement("HalfCheetah-v5", 0, 200)
    assert first is not None and 10 <= first < 100


@pytest.mark.parametrize("env_id", ["Ant-v5", "Humanoid-v5"])
def test_spatial_tasks_part_from_gymnasium_at_once(env_id):
    """Ant-v5 and Humanoid-v5: past the tolerance within two steps (cfrc_ext / cinert / cvel entries)."""
    first, _ = first_disagreement(env_id, 0, 10)
    assert first is not None and first <= 1


def test_reset_seed_is_ignored_so_episodes_cannot_be_seeded():
    """EnvPool seeds env i once, at make (``seed + i``, or a list), and ignores ``reset(seed=)`` with a warning;
    each reset draws the next start state from the env's stream. check_env's first check (``reset(seed=s)``
    twice gives the same start) fails."""
    pool = envpool.make_gymnasium("Hopper-v5", num_envs=2, seed=0)
    first, _ = pool.reset()
    with pytest.warns(UserWarning, match="seeds are fixed"):
        again, _ = pool.reset(seed=0)
    assert not np.allclose(first, again)
    shifted, _ = envpool.make_gymnasium("Hopper-v5", num_envs=2, seed=1).reset()
    np.testing.assert_array_equal(shifted[0], first[1])  # env i of seed s is env 0 of seed s + i


def test_a_subset_steps_alone_and_a_finished_env_restarts():
    """``step(actions [M, act_dim], env_id [M])`` steps just those envs (results in that order); an env stepped
    after its episode ended starts a new one (autoreset), so a lock-step evaluation must leave it out."""
    pool = envpool.make_gymnasium("Hopper-v5", num_envs=3, seed=0)
    pool.reset()
    *_, info = pool.step(np.zeros((2, 3)), np.array([2, 0]))
    assert info["env_id"].tolist() == [2, 0] and info["elapsed_step"].tolist() == [1, 1]
    *_, info = pool.step(np.zeros((3, 3)))
    assert info["elapsed_step"].tolist() == [2, 1, 2]  # env 1 was not stepped before
    for _ in range(1000):
        _, _, term, trunc, info = pool.step(np.ones((1, 3)), np.array([1]))
        if term[0] or trunc[0]:
            break
    assert term[0]
    _, reward, term, trunc, info = pool.step(np.ones((1, 3)), np.array([1]))
    assert info["elapsed_step"][0] == 0 and reward[0] == 0 and not (term[0] or trunc[0])
