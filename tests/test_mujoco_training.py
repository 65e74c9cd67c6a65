"""A policy trained on the mujoco backend, judged and filmed on gymnasium's own env."""

import imageio
import numpy as np
import pytest

from neuroevo import Trainer, resolve_config
from neuroevo.cli import main
from neuroevo.playback import evaluate_checkpoint, record_video


@pytest.fixture(scope="module")
def hopper_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("hopper")
    overrides = {"run": {"algo": "ars", "seed": 0, "device": "cpu", "generations": 15, "target": None, "eval_every": 1}}
    result = Trainer(resolve_config("Hopper-v5", overrides), run_dir).run()
    return run_dir, result


def test_short_ars_on_hopper_improves(hopper_run):
    _, result = hopper_run
    returns = [row["eval/return_mean"] for row in result.history if "eval/return_mean" in row]
    # ARS V2-t with the card's settings: about 160 -> 250 in 15 generations (seeds 0-2 reach 245-355)
    assert max(returns[-3:]) > returns[0] + 50


def test_same_mean_return_on_gymnasium_as_on_our_backend(hopper_run):
    run_dir, _ = hopper_run
    ours = evaluate_checkpoint(run_dir, episodes=40, backend="mujoco", seed=1)
    reference = evaluate_checkpoint(run_dir, episodes=40, backend="gymnasium", seed=1)
    # different reset-noise streams: equal within the standard error of the two means
    stderr = np.hypot(ours["std"], reference["std"]) / np.sqrt(40)
    assert abs(ours["mean"] - reference["mean"]) < 4 * stderr + 1e-6


def test_video_holds_the_episode_frames(hopper_run, tmp_path):
    run_dir, _ = hopper_run
    video = record_video(run_dir, tmp_path / "hopper.mp4", max_steps=20)
    with imageio.get_reader(tmp_path / "hopper.mp4") as reader:
        frames = [frame for frame in reader]  # iterate: the reader's length is unknown up front
    assert video["frames"] == len(frames) and 2 <= len(frames) <= 21
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3 and frames[0].std() > 0  # not a blank image


def test_cli_eval_with_video(hopper_run, tmp_path, capsys):
    run_dir, _ = hopper_run
    out = tmp_path / "cli.mp4"
    assert main(["eval", str(run_dir), "--env", "Hopper-v5", "--episodes", "3", "--video", str(out),
                 "--video-steps", "20"]) == 0
    printed = capsys.readouterr().out
    assert "Hopper-v5 (gymnasium): mean return" in printed and f"video: {out}, " in printed
    assert out.stat().st_size > 0
    assert main(["eval", str(run_dir), "--video", str(out), "--video-steps", "0"]) == 2
    assert "--video-steps must be at least 1, got 0" in capsys.readouterr().err
