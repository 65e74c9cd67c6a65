"""The one logger: every output format holds the same metrics, a resumed run continues them, W&B (offline)
records the run, videos are captured during training, the command line is kept."""

import csv
import json
import shutil

import pytest

from neuroevo import Trainer, resolve_config
from neuroevo.cli import main
from neuroevo.logger import LogConfig, Logger


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def train(out, *flags):
    return main(["train", "--env", "CartPole-v1", "--algo", "ars", "--seed", "3", "--set", "run.eval_episodes=3",
                 "--quiet", *flags, "--out", str(out)])


def test_every_format_holds_the_same_metrics_and_a_resume_continues_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--generations", "3", "--log", "stdout,csv,jsonl,tensorboard") == 0
    printed = capsys.readouterr().out
    assert "| eval/return_mean" in printed and "| train/fitness_mean" in printed  # the console table
    assert (out / "command.txt").read_text().splitlines() == [
        f"neuroevo train --env CartPole-v1 --algo ars --seed 3 --set run.eval_episodes=3 --quiet --generations 3 --log "
        f"stdout,csv,jsonl,tensorboard --out {out}"]
    kept = tmp_path / "gen3.pt"
    shutil.copy(out / "checkpoints" / "last.pt", kept)
    assert main(["train", "--resume", str(out), "--generations", "4", "--quiet"]) == 0
    # a kill after generation 4, before its checkpoint: generation 4 is in every log, the checkpoint is generation 3
    shutil.copy(kept, out / "checkpoints" / "last.pt")
    assert main(["train", "--resume", str(out), "--generations", "5", "--quiet"]) == 0

    rows = jsonl(out / "metrics.jsonl")
    assert [r["generation"] for r in rows] == [1, 2, 3, 4, 5]
    with open(out / "progress.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["generation"]) for r in table] == [1, 2, 3, 4, 5]
    events = scalars(out / "tb")
    names = set().union(*(r.keys() for r in rows))
    assert set(table[0].keys()) == names and set(events.Tags()["scalars"]) == names  # one vocabulary
    for key in ("eval/return_mean", "train/fitness_mean", "env_steps"):
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert logged == [(r["env_steps"], pytest.approx(r[key])) for r in rows]  # each step once, after resume
        assert [float(r[key]) for r in table] == pytest.approx([r[key] for r in rows])
    assert len((out / "command.txt").read_text().splitlines()) == 3  # the run, then each resume


def test_bad_log_settings_are_one_line_errors(tmp_path, capsys, monkeypatch):
    assert train(tmp_path / "a", "--generations", "1", "--log", "stdout,xml") == 2
    assert "unknown log format 'xml'" in capsys.readouterr().err
    assert train(tmp_path / "a", "--generations", "1", "--capture-video", "0") == 2
    assert "log.capture_video must be a positive number of generations" in capsys.readouterr().err
    with pytest.raises(ValueError, match="writes into the run directory"):
        Trainer(resolve_config("CartPole-v1", {"run": {"generations": 1}, "log": {"capture_video": 1}})).run()
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)  # not installed
    assert train(tmp_path / "b", "--generations", "1", "--log", "tensorboard") == 2
    assert "pip install 'neuroevo[tensorboard]'" in capsys.readouterr().err


def wandb_records(path):
    """The records of an offline W&B run file (a LevelDB-style log of protobuf records in 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pending, records = path.read_bytes(), 7, b"", []  # 7: the ':W&B' header, magic and version
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_tracking_with_wandb_offline_records_config_and_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert train(out, "--generations", "2", "--track", "--wandb-project", "neuroevo-tests") == 0
    run_id = (out / "wandb-id.txt").read_text().strip()
    [run_file] = (out / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    records = wandb_records(run_file)
    [run] = [r.run for r in records if r.HasField("run")]
    assert run.run_id == run_id and run.project == "neuroevo-tests"
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["run"]["algo"] == "ars" and config["log"]["track"] is True
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.HasField("history")]
    rows = jsonl(out / "metrics.jsonl")
    assert [h["eval/return_mean"] for h in history] == pytest.approx([r["eval/return_mean"] for r in rows])
    assert [h["env_steps"] for h in history] == [r["env_steps"] for r in rows]


def test_capture_video_films_the_best_policy_into_the_run_and_tensorboard(tmp_path):
    overrides = {"run": {"algo": "ars", "generations": 2, "target": None, "eval_episodes": 2, "device": "cpu"},
                 "ars": {"popsize": 8, "top_directions": None}, "env": {"max_steps": 20},
                 "log": {"capture_video": 2, "formats": ["tensorboard"]}}
    Trainer(resolve_config("InvertedPendulum-v5", overrides), tmp_path).run()
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["generation00002.mp4"]
    events = scalars(tmp_path / "tb")
    [image] = events.Images("video/best_policy")
    assert image.step == jsonl(tmp_path / "metrics.jsonl")[1]["env_steps"]
    assert image.encoded_image_string[:6] == b"GIF89a" and image.width > 0


def test_logger_without_a_run_directory_writes_only_stdout(capsys):
    with Logger(None, LogConfig(formats=["stdout", "csv", "tensorboard"])) as logger:
        logger.write({"generation": 1, "env_steps": 10, "eval/return_mean": 1.5})
    assert "| eval/return_mean | 1.5" in capsys.readouterr().out
