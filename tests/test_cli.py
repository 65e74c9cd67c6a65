"""The command line: train, eval, resume, and one-line errors."""

import json

import pytest

from neuroevo.cli import main


def test_train_then_eval_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--env", "CartPole-v1", "--algo", "ars", "--generations", "2", "--popsize", "8",
            "--device", "cpu", "--seed", "1", "--out", str(out), "--quiet", "--set", "run.eval_episodes=3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"results in {out}" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["ars"]["popsize"] == 8 and config["run"]["generations"] == 2 and config["run"]["target"] is None
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    assert main(["eval", str(out), "--episodes", "4", "--backend", "gymnasium"]) == 0
    assert "CartPole-v1 (gymnasium): mean return" in capsys.readouterr().out
    assert main(["eval", str(out / "best_policy.pt"), "--env", "CartPole-v1", "--episodes", "4",
                 "--backend", "torch"]) == 0
    assert "over 4 episodes" in capsys.readouterr().out

    assert main(["train", "--resume", str(out), "--generations", "3", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--env", "NoSuchEnv-v0", "--out", "x", "--generations", "1"], "unknown env id 'NoSuchEnv-v0'"),
        (["train", "--env", "CartPole-v1", "--popsize", "0", "--out", "x"], "popsize must be positive, got 0"),
        (["train", "--env", "CartPole-v1", "--popsize", "-4", "--out", "x"], "popsize must be positive, got -4"),
        (["train", "--env", "CartPole-v1", "--out", "x", "--set", "es.sigmaa=1"], "unknown setting es.sigmaa"),
        (["train", "--out", "x"], "train needs --env"),
        (["train", "--resume", "x", "--popsize", "8"], "--out and --popsize cannot change"),
        (["eval", "no/such/run"], "no such file"),
        (["train", "--env", "CartPole-v1", "--out", "x", "--device", "gpu"], "unknown device 'gpu'"),
    ],
)
def test_bad_input_is_one_line_on_stderr(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_eval_of_a_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "best_policy.pt"
    bad.write_bytes(b"garbage")
    assert main(["eval", str(bad)]) == 2
    assert "not a readable neuroevo file" in capsys.readouterr().err
