"""One logger for every run: the trainer's, the PPO baseline's and every run of ``neuroevo compare``.

A metrics row (``generation``, ``env_steps``, ``episodes``, ``train/...``, ``eval/...``, ``time/...``) goes to
each output format of the run's ``[log]`` settings under the same names, the formats Stable-Baselines3 names:

- ``json``: ``metrics.jsonl``, one JSON object per row (always written in a run directory: resume, compare, report
  and tune read it);
- ``csv``: ``progress.csv``, one column per metric (a metric that appears later widens the header, as SB3's
  CSV writer does; empty cells where a row has no value);
- ``stdout``: a table of the row per generation, SB3's console format;
- ``tensorboard``: event files under ``tb/``, one scalar per metric with ``env_steps`` as the step (torch's
  ``SummaryWriter``; the ``tensorboard`` extra);

and, with ``log.track``, to a Weights & Biases run (the ``wandb`` extra; ``WANDB_MODE=offline`` keeps it on disk).
A resumed run continues every file: rows past the checkpoint (written by the killed run after its last
checkpoint) are dropped from ``metrics.jsonl`` and ``progress.csv``, TensorBoard hides the events past it
(``purge_step``) and the W&B run is the same one (its id is kept in ``wandb-id.txt``).

Every run directory also keeps ``command.txt``: the command line of every invocation that wrote to it (the
first, then each resume), beside ``config.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import secrets
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroevo.checkpoint import atomic_write

#: the output formats ``log.formats`` / ``--log`` accept (``jsonl`` is read as ``json``)
FORMATS: tuple[str, ...] = ("stdout", "csv", "json", "tensorboard")
#: metrics.jsonl as before, and a CSV beside it
DEFAULT_FORMATS: tuple[str, ...] = ("json", "csv")


@dataclass
class LogConfig:
    """Where a run's metrics go (the ``[log]`` section of a task card; ``--log``, ``--track``,
    ``--capture-video`` on the command line)."""

    formats: list[str] = field(default_factory=lambda: list(DEFAULT_FORMATS))
    """output formats, from 'stdout', 'csv', 'json' (= 'jsonl', metrics.jsonl: always written in a run
    directory) and 'tensorboard' (the tensorboard extra), with the same metric names in each"""
    capture_video: int | None = None
    """render the best policy so far on gymnasium's env every this many generations, into videos/ of the run
    directory (and to TensorBoard and W&B when they are on)"""
    track: bool = False
    """also send the config, the metrics and the videos to Weights & Biases (the wandb extra; WANDB_MODE=offline
    keeps the run on disk for a later ``wandb sync``)"""
    wandb_project: str = "neuroevo"
    """the W&B project of tracked runs"""
    wandb_entity: str | None = None
    """the W&B team or user of tracked runs (default: the logged-in user's)"""

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for settings no run can use."""
        for name in self.formats:
            if normalize_format(name) not in FORMATS:
                raise ValueError(f"unknown log format {name!r}; choose from {', '.join(FORMATS)} (or jsonl)")
        if self.capture_video is not None and self.capture_video <= 0:
            raise ValueError(f"log.capture_video must be a positive number of generations, got {self.capture_video}")


def normalize_format(name: str) -> str:
    return "json" if name == "jsonl" else name


def parse_formats(text: str) -> list[str]:
    """``"stdout,csv,tensorboard"`` -> ``["stdout", "csv", "tensorboard"]`` (one-line error for an unknown one)."""
    names = [normalize_format(n.strip().lower()) for n in text.split(",") if n.strip()]
    LogConfig(formats=names).validate()
    return list(dict.fromkeys(names))


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """The logging flags of ``neuroevo train``: --log, --track, --wandb-project, --capture-video."""
    log = parser.add_argument_group("logging and tracking (docs/guides/logging-and-tuning.md)")
    log.add_argument("--log", metavar="FORMATS",
                     help=f"comma-separated output formats from {','.join(FORMATS)} "
                     f"(default {','.join(DEFAULT_FORMATS)}; json, metrics.jsonl, is always written)")
    log.add_argument("--track", action="store_true", help="track the run with Weights & Biases (the wandb extra)")
    log.add_argument("--wandb-project", metavar="NAME", help="W&B project of --track (default neuroevo)")
    log.add_argument("--capture-video", type=int, metavar="EVERY",
                     help="render the best policy every EVERY generations into RUN/videos/ (and TensorBoard / W&B)")


def log_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The logging flags as the config's ``[log]`` section (only those given)."""
    log: dict[str, Any] = {}
    if args.log is not None:
        log["formats"] = parse_formats(args.log)
    if args.track:
        log["track"] = True
    if args.wandb_project is not None:
        log["wandb_project"] = args.wandb_project
    if args.capture_video is not None:
        log["capture_video"] = args.capture_video
    return log


def command_line(argv: list[str] | None = None) -> str:
    """The invocation as a shell line: ``neuroevo ...`` for the CLI, else the Python command that ran."""
    if argv is not None:
        return shlex.join(["neuroevo", *argv])
    return shlex.join([Path(sys.executable).name, *sys.argv])


def record_command(run_dir: Path, command: str) -> None:
    """Append the command line to ``run_dir/command.txt`` (one line per invocation)."""
    with open(run_dir / "command.txt", "a") as f:
        f.write(command.replace("\n", " ") + "\n")


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _generation(line: str) -> int:
    """The generation of a metrics.jsonl line, -1 for a line torn mid-write."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return -1
    generation = row.get("generation") if isinstance(row, dict) else None
    return generation if isinstance(generation, int) else -1


class JsonWriter:
    """``metrics.jsonl``: one JSON object per row, appended as it comes."""

    def __init__(self, path: Path, keep_generation: int):
        self.path = path
        if path.exists():  # a resumed run: the rows after its checkpoint are redone; a row torn by a kill or a
            rows = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]  # full disk
            kept = [line for line in rows if 0 <= _generation(line) <= keep_generation]
            if len(kept) < len(rows):  # rewritten atomically: a kill now loses no row either
                text = "".join(line + "\n" for line in kept).encode()
                atomic_write(path, lambda f: f.write(text))

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        pass


class CsvWriter:
    """``progress.csv``: one column per metric, in the order they first appeared."""

    def __init__(self, path: Path, keep_generation: int):
        self.path = path
        self.keys: list[str] = []
        if path.exists():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.keys = list(reader.fieldnames or [])
                rows = list(reader)
            kept = [r for r in rows if r.get("generation") and float(r["generation"]) <= keep_generation]
            if len(kept) < len(rows):
                self._rewrite(kept)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.keys, restval="")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue().encode()
        atomic_write(self.path, lambda f: f.write(text))

    def write(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.keys]
        if new or not self.path.exists():  # a wider header: the file is rewritten once with it
            rows: list[dict[str, Any]] = []
            if self.path.exists():
                with open(self.path, newline="") as f:
                    rows = list(csv.DictReader(f))
            self.keys += new
            self._rewrite(rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.keys, restval="").writerow(row)

    def close(self) -> None:
        pass


class StdoutWriter:
    """Each row as a two-column table on standard output (Stable-Baselines3's console format)."""

    def write(self, row: dict[str, Any]) -> None:
        cells = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in row.items()]
        width_key = max(len(k) for k, _ in cells)
        width_value = max(len(v) for _, v in cells)
        rule = "-" * (width_key + width_value + 7)
        lines = [rule, *(f"| {k:<{width_key}} | {v:<{width_value}} |" for k, v in cells), rule]
        print("\n".join(lines), flush=True)

    def close(self) -> None:
        pass


class TensorBoardWriter:
    """Event files under ``tb/``: one scalar per metric, its step the row's ``env_steps``."""

    def __init__(self, log_dir: Path, purge_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "log format 'tensorboard' needs the tensorboard package: pip install 'neuroevo[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def write(self, row: dict[str, Any]) -> None:
        step = int(row["env_steps"])
        for key, value in _numbers(row).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def video(self, tag: str, frames: list[Any], fps: int, step: int) -> None:
        """An animated GIF in the Images tab (what ``add_video`` writes, without its moviepy dependency)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        height, width = frames[0].shape[:2]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=_gif(frames, fps))
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _gif(frames: list[Any], fps: int) -> bytes:
    import imageio

    buffer = io.BytesIO()
    imageio.mimwrite(buffer, frames, format="GIF", duration=1000 / fps, loop=0)
    return buffer.getvalue()


class WandbWriter:
    """A Weights & Biases run: the config, every row (charted against ``env_steps``), the videos."""

    def __init__(self, run_dir: Path | None, log: LogConfig, config: dict[str, Any]):
        try:
            import wandb
        except ImportError:
            raise ImportError("--track needs Weights & Biases: pip install 'neuroevo[wandb]'") from None
        self.wandb = wandb
        id_path = run_dir / "wandb-id.txt" if run_dir is not None else None
        run_id = id_path.read_text().strip() if id_path is not None and id_path.exists() else None
        if run_id is None:
            run_id = secrets.token_hex(4)  # W&B's own ids are 8 characters of [a-z0-9] too
            if id_path is not None:
                id_path.write_text(run_id + "\n")
        self.run = wandb.init(
            project=log.wandb_project,
            entity=log.wandb_entity,
            id=run_id,
            resume="allow",
            name=run_dir.name if run_dir is not None else None,
            dir=str(run_dir) if run_dir is not None else None,
            config=config,
        )
        self.run.define_metric("env_steps")
        self.run.define_metric("*", step_metric="env_steps")

    def write(self, row: dict[str, Any]) -> None:
        self.run.log(_numbers(row))

    def video(self, tag: str, path: Path, fps: int, step: int) -> None:
        video_format: Any = path.suffix[1:]  # mp4 or gif
        self.run.log({tag: self.wandb.Video(str(path), fps=fps, format=video_format), "env_steps": step})

    def close(self) -> None:
        self.run.finish()


def check_renderable(env_id: str, run_dir: Path | None) -> None:
    """A one-line ``ValueError`` now, rather than at the first video, if the run cannot keep videos or gymnasium
    cannot render ``env_id``."""
    import gymnasium as gym

    if run_dir is None:
        raise ValueError("log.capture_video writes into the run directory: give the run one (--out)")

    try:
        env = gym.make(env_id, render_mode="rgb_array")
        try:
            env.reset(seed=0)
            env.render()
        finally:
            env.close()
    except (gym.error.Error, ImportError) as err:
        raise ValueError(f"log.capture_video: cannot render {env_id!r}: {err}") from None


class Logger:
    """The run's output formats (``log.formats``), its W&B run (``log.track``) and its videos, behind one ``write``.

    Args:
        run_dir: the run directory (None: no files; only stdout and W&B are written).
        log: the run's ``[log]`` settings.
        config: the whole config as plain data (W&B's run config).
        generation, env_steps: where the run starts: 0 for a new run, the checkpoint's for a resumed one (rows
            the killed run wrote after its checkpoint are dropped, TensorBoard's events after it hidden).
    """

    def __init__(
        self,
        run_dir: Path | None,
        log: LogConfig,
        config: dict[str, Any] | None = None,
        *,
        generation: int = 0,
        env_steps: int = 0,
    ):
        log.validate()
        self.run_dir = run_dir
        self.log = log
        formats = {normalize_format(f) for f in log.formats}  # without a run directory: stdout and W&B only
        self.writers: list[Any] = []
        self.tensorboard: TensorBoardWriter | None = None
        self.wandb: WandbWriter | None = None
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.writers.append(JsonWriter(run_dir / "metrics.jsonl", generation))
            if "csv" in formats:
                self.writers.append(CsvWriter(run_dir / "progress.csv", generation))
            if "tensorboard" in formats:
                self.tensorboard = TensorBoardWriter(run_dir / "tb", env_steps + 1 if generation else None)
                self.writers.append(self.tensorboard)
        if "stdout" in formats:
            self.writers.append(StdoutWriter())
        if log.track:
            self.wandb = WandbWriter(run_dir, log, config or {})
            self.writers.append(self.wandb)

    def write(self, row: dict[str, Any]) -> None:
        """One metrics row to every format."""
        for writer in self.writers:
            writer.write(row)

    def video(self, path: Path, env_steps: int, tag: str = "video/best_policy") -> None:
        """A video file the run rendered, to TensorBoard and W&B when they are on."""
        if self.tensorboard is None and self.wandb is None:
            return
        import imageio

        reader: Any
        with imageio.get_reader(path) as reader:
            fps = int(round(reader.get_meta_data().get("fps", 30)))
            frames = [frame for frame in reader]  # not list(): an mp4 reader reports an infinite length
        if self.tensorboard is not None:
            stride = max(1, math.ceil(len(frames) / 100))  # at most ~100 frames in the GIF
            self.tensorboard.video(tag, frames[::stride], max(1, fps // stride), env_steps)
        if self.wandb is not None:
            self.wandb.video(tag, path, fps, env_steps)

    def capture_video(self, generation: int, env_steps: int, *, max_steps: int | None = None, seed: int = 0) -> Path:
        """Render the run's best policy so far (``best_policy.pt``) to ``videos/generation<N>.mp4``; log it."""
        from neuroevo.playback import record_video

        if self.run_dir is None:
            raise ValueError("log.capture_video writes into the run directory: give the run one (--out)")
        path = self.run_dir / "videos" / f"generation{generation:05d}.mp4"
        record_video(self.run_dir / "best_policy.pt", path, max_steps=max_steps, seed=seed)
        self.video(path, env_steps)
        return path

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
