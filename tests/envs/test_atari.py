"""The atari backend: ale-py's vector env behind the batched-env contract, the papers' preprocessing, and the
same frames as gymnasium's own ALE env with the standard wrappers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ale_py")

from neuroevo.envs import check_env, make_env, resolve_backend  # noqa: E402
from neuroevo.envs.atari import ale_seed  # noqa: E402
from neuroevo.rollout import evaluate  # noqa: E402


def test_ale_ids_pick_the_atari_backend_and_keep_the_contract():
    assert resolve_backend("ALE/Pong-v5") == "atari"
    env = make_env("ALE/Pong-v5", 3, max_episode_steps=8, num_threads=1)
    assert env.single_observation_space.shape == (4, 84, 84) and env.obs_dim == 4 * 84 * 84
    check_env(env, steps=16)
    obs, _ = env.reset(seed=1)
    assert obs.dtype == torch.uint8 and obs.shape == (3, env.obs_dim)  # pixels stay uint8
    env.close()


def test_same_frames_and_scores_as_gymnasium_with_the_standard_wrappers():
    """No-ops off, no sticky actions: one action sequence, identical observations, unclipped rewards and flags
    on ale-py's C++ preprocessing and on gymnasium's AtariPreprocessing + FrameStackObservation."""
    pytest.importorskip("cv2")
    kwargs = {"noop_max": 0, "sticky_actions": 0.0}
    ours = make_env("ALE/Frostbite-v5", 2, backend="atari", num_threads=1, **kwargs)
    reference = make_env("ALE/Frostbite-v5", 2, backend="gymnasium", **kwargs)
    obs_a, _ = ours.reset(seed=[3, 4])
    obs_b, _ = reference.reset(seed=[3, 4])
    assert torch.equal(obs_a.float(), obs_b)
    actions = torch.randint(0, 18, (300, 2), generator=torch.Generator().manual_seed(0))
    total = torch.zeros(2)
    for a in actions:
        step_a, step_b = ours.step(a), reference.step(a)
        assert torch.equal(step_a[0].float(), step_b[0])
        for x, y in zip(step_a[1:4], step_b[1:4], strict=True):
            assert torch.equal(x, y)
        total += step_a[1]
    assert total.max() > 1  # the score, not rewards clipped to [-1, 1]
    ours.close()
    reference.close()


def test_a_finished_game_never_leaks_into_fitness():
    """ale-py restarts a finished game by itself on the next step; the member's return is its first game only:
    playing on after the time limit adds nothing, and equals the return of the same game cut at the limit."""
    env = make_env("ALE/Frostbite-v5", 2, max_episode_steps=40, num_threads=1)
    env.reset(seed=7)
    gen = torch.Generator().manual_seed(1)
    returns, finished_rewards = torch.zeros(2), []
    for _ in range(60):
        obs, reward, terminated, truncated, _ = env.step(torch.randint(0, 18, (2,), generator=gen))
        returns += reward
        if env.elapsed.max() >= 40:
            finished_rewards.append(reward.clone())
    assert bool(truncated.all()) and env.elapsed.tolist() == [40, 40]
    assert all(float(r.abs().sum()) == 0.0 for r in finished_rewards[1:])
    env.close()


def test_a_linear_policy_plays_from_pixels():
    from neuroevo.policies import Linear, output_dim

    env = make_env("ALE/Pong-v5", 4, max_episode_steps=20, num_threads=1)
    policy = Linear(env.obs_dim, output_dim(env.single_action_space))
    params = torch.randn(2, policy.num_params, generator=torch.Generator().manual_seed(0)) * 1e-3
    result = evaluate(policy, params, env, episodes=2, seed=5)
    assert result.episode_returns.shape == (2, 2) and int(result.env_steps) == 4 * 20
    env.close()


def test_bad_ids_and_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown Atari env id"):
        make_env("ALE/NoSuchGame-v5", 1)
    with pytest.raises(ValueError, match="sticky_actions"):
        make_env("ALE/Pong-v5", 1, sticky_actions=1.5)
    with pytest.raises(ValueError, match="frame_skip"):
        make_env("ALE/Pong-v5", 1, frame_skip=0)


def test_seeds_beyond_32_bits_are_hashed_into_ale_range():
    assert ale_seed(12345) == 12345
    big = [ale_seed(s) for s in (2**40, 2**40 + 1, -1)]
    assert all(0 <= s < 2**31 for s in big) and len(set(big)) == 3
    env = make_env("ALE/Pong-v5", 2, num_threads=1)
    a, _ = env.reset(seed=[2**40, 2**40])
    b, _ = env.reset(seed=[2**40, 2**40])
    assert torch.equal(a, b) and np.array_equal(a[0].numpy(), a[1].numpy())
    env.close()


def test_the_card_trains_from_the_cli_and_its_policy_plays_on_gymnasium(tmp_path, capsys):
    """The Frostbite card (conv policy, the paper's GA with random starts, compact genomes, elite episodes, sharded
    evaluation) at a tiny size; the saved policy plays the same games on gymnasium's env with the standard
    wrappers as on our backend (no-ops drawn from different streams: one fixed game each here, no-ops off)."""
    from neuroevo.cli import main

    run = tmp_path / "frostbite"
    small = ["--set", "ga.truncation=2", "--set", "ga.num_elites=2", "--set", "ga.elite_episodes=2",
             "--set", "env.max_steps=25", "--set", "policy.arch=small", "--set", "run.eval_episodes=2",
             "--set", "run.shard_size=4", "--set", "env.kwargs.noop_max=0"]
    assert main(["train", "--env", "ALE/Frostbite-v5", "--popsize", "6", "--generations", "2", "--out", str(run),
                 "--quiet", *small]) == 0
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["optimizer"]
    assert bool((state["parents"]["starts"] >= 0).all())  # the paper's generation 0: random networks
    results = {}
    for backend in ("gymnasium", "atari"):
        assert main(["eval", str(run), "--episodes", "2", "--backend", backend]) == 0
        results[backend] = capsys.readouterr().out.strip().splitlines()[-1].split("mean return ")[1]
    assert results["gymnasium"] == results["atari"]


def test_a_reused_env_replays_its_games():
    """Every game is seeded, no-ops or not: unseeded restarts of Frostbite lasted 247 and 248 steps by turns for
    the same network and actions, so a member's fitness depended on the env's history."""
    from neuroevo.config import resolve_config

    card = resolve_config("ALE/Frostbite-v5", {"policy": {"arch": "small"}, "env": {"kwargs": {"noop_max": 0}}})
    env = make_env(card.env.id, 6, **card.env.make_args())
    policy = card.policy.build(env.obs_dim, env.single_action_space, env.single_observation_space)
    params = torch.randn(6, policy.num_params, generator=torch.Generator().manual_seed(1)) * policy.init_std()
    first, second = (evaluate(policy, params, env, max_steps=280, seed=3) for _ in range(2))
    env.close()
    assert int((first.episode_lengths < 280).sum()) >= 2  # games that ended and were restarted
    assert torch.equal(first.episode_lengths, second.episode_lengths)
    assert torch.equal(first.episode_returns, second.episode_returns)
