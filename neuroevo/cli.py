"""The command line: ``neuroevo train | eval | bench | compare | tune | report``.

It parses and calls the library, nothing more.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from neuroevo.algorithms import ALGORITHMS
from neuroevo.cli_user import add_user_code_arguments, build_module, env_id_of, user_code_overrides
from neuroevo.config import (
    card_names,
    config_from_dict,
    load_card,
    parse_override,
    resolve_config,
    unused_settings,
)
from neuroevo.envs import BACKENDS
from neuroevo.logger import add_log_arguments, log_overrides


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The CLI flags as a nested override of the config (budget flags replace the card's budget)."""
    run: dict[str, Any] = {}
    budget = {"generations": args.generations, "steps": args.steps, "target": args.target}
    if any(v is not None for v in budget.values()):
        run.update(budget)
    for key in ("seed", "device", "workers", "ray_address"):
        if getattr(args, key) is not None:
            run[key] = getattr(args, key)
    if args.ray_dashboard:
        run["ray_dashboard"] = True
    if args.compile:
        run["compile"] = True
    if args.algo is not None:
        run["algo"] = args.algo
    out: dict[str, Any] = {"run": run} if run else {}
    if args.backend is not None:
        out.setdefault("env", {})["backend"] = args.backend
    if args.policy is not None:
        out.setdefault("policy", {})["kind"] = args.policy
    _merge(out, user_code_overrides(args))
    log = log_overrides(args)
    if log:
        out["log"] = log
    for text in args.set or []:
        _merge(out, parse_override(text))
    overlay: dict[str, Any] = {}  # --config files first: the flags and --set override them
    for path in args.config or []:
        _merge(overlay, load_card(Path(path)))
    _merge(overlay, out)
    return overlay


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def cmd_train(args: argparse.Namespace) -> int:
    from neuroevo.logger import command_line
    from neuroevo.trainer import Trainer

    overrides = _train_overrides(args)
    if args.capture_video is not None and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "osmesa"  # headless: MuJoCo's software renderer, before mujoco is imported
    command = command_line(args.argv)
    fixed = (args.popsize, args.env, args.out, args.env_entry_point, args.env_kwargs)
    if args.resume is not None and any(v is not None for v in fixed):
        raise ValueError("--resume continues the run's own config: --env, --env-*, --out and --popsize cannot change")
    if args.resume is not None:
        trainer = Trainer.resume(args.resume, overrides, progress=not args.quiet, command=command)
        print(f"resuming {args.resume} at generation {trainer.generation}")
    else:
        env = args.env or env_id_of(args.env_entry_point)
        if env is None:
            raise ValueError("train needs --env (or --env-entry-point) and --out, or --resume DIR")
        if (Path(args.out) / "metrics.jsonl").exists():
            raise ValueError(f"{args.out} already holds a run: continue it with --resume {args.out}, "
                             "or pick another --out")
        config = resolve_config(env, overrides)
        if args.popsize is not None:  # an override of the chosen optimizer's section, type-checked like --set
            config = config_from_dict({config.run.algo: {"popsize": args.popsize}}, config)
        trainer = Trainer(config, args.out, progress=not args.quiet, command=command)
    if "stdout" in trainer.config.log.formats:
        trainer.progress = False  # the rows are printed: no bar between them
    cfg = trainer.config
    for setting in unused_settings(overrides, cfg):  # a setting the run would not read is never silent
        warnings.warn(f"--set {setting} has no effect on this run", UserWarning, stacklevel=1)
    where = f"{trainer.eval_env.__class__.__name__}, {trainer.device}"
    if cfg.run.workers:
        where = f"{cfg.run.workers} Ray workers at {cfg.run.ray_address or 'a local instance on 127.0.0.1'}"
    print(
        f"training {cfg.run.algo.upper()} on {cfg.env.id} ({where}), "
        f"popsize {trainer.optimizer.popsize}, {trainer.policy.num_params} parameters"
    )
    result = trainer.run()
    if result.interrupted:
        print(f"interrupted after generation {result.generations}; checkpoint saved, continue with: "
              f"neuroevo train --resume {result.run_dir}")
        return 130
    status = "solved" if result.solved else "budget spent"
    print(
        f"{status}: best evaluated return {result.best_eval_return:.2f} after {result.generations} generations, "
        f"{result.env_steps} env steps, {result.wall_time:.1f} s"
    )
    print(f"results in {result.run_dir}: config.json, command.txt, metrics.jsonl, best_policy.pt, checkpoints/last.pt")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.video_steps is not None:  # checked before the evaluation, which takes a while
        if args.video_steps < 1:
            raise ValueError(f"--video-steps must be at least 1, got {args.video_steps}")
        if not args.video:
            raise ValueError("--video-steps needs --video PATH")
    if args.video and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        # Headless: MuJoCo's software renderer, chosen before anything imports mujoco.
        os.environ["MUJOCO_GL"] = "osmesa"
    from neuroevo.playback import evaluate_checkpoint, record_video

    module = build_module(args.policy_module, args.policy_kwargs) if args.policy_module else None
    summary = evaluate_checkpoint(
        args.checkpoint, args.env, args.episodes, backend=args.backend, device=args.device, seed=args.seed,
        module=module,
    )
    print(
        f"{summary['env_id']} ({summary['backend']}): mean return {summary['mean']:.2f} "
        f"+/- {summary['std']:.2f} over {summary['episodes']} episodes"
    )
    if args.video:
        video = record_video(args.checkpoint, args.video, args.env, seed=args.seed, max_steps=args.video_steps)
        print(f"video: {video['path']}, {video['frames']} frames, return {video['return']:.2f}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from neuroevo import bench

    bench.main(args)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from neuroevo.compare import run_comparison
    from neuroevo.report import write_report

    overrides: dict[str, Any] = {}
    if args.log is not None:
        from neuroevo.logger import parse_formats

        overrides["log"] = {"formats": parse_formats(args.log)}
    for text in args.set or []:
        _merge(overrides, parse_override(text))

    def on_run(algo: str, seed: int, status: str) -> None:
        if status != "done":
            print(f"{algo} seed {seed}: {'finished before, skipped' if status == 'skip' else 'training'}", flush=True)

    command = "neuroevo " + " ".join(sys.argv[1:]) if args.command_line is None else args.command_line
    comparison = run_comparison(
        args.task, args.algos, args.steps, args.seeds, args.out, overrides or None,
        threads=args.threads, on_run=on_run, command=command, archive=args.archive,
    )
    report = write_report(comparison, args.out)
    print(f"report: {args.out}/report.md ({', '.join(p.name for p in report['files'])})")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from neuroevo.logger import command_line
    from neuroevo.tune import describe_trial, tune

    overrides: dict[str, Any] = {}
    for text in args.set or []:
        _merge(overrides, parse_override(text))
    result = tune(args.task, args.algo, args.trials, args.budget, args.out, seed=args.seed, marks=args.marks,
                  jobs=args.jobs, threads=args.threads, overrides=overrides or None, command=command_line(args.argv),
                  on_trial=lambda trial: print(describe_trial(trial), flush=True))
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.counts.items()))
    print(f"best: trial {result.best_trial}, mean evaluated return over the marks {result.best_value:.2f} ({states})")
    print(f"settings: {args.out}/best.toml; train with them: neuroevo train --env {args.task} "
          f"--config {args.out}/best.toml --out RUN")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from neuroevo.compare import load_comparison
    from neuroevo.report import write_report

    report = write_report(load_comparison(args.dir), args.out or args.dir)
    print(f"report: {args.out or args.dir}/report.md ({', '.join(p.name for p in report['files'])})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuroevo", description="Neuroevolution on torch.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train a policy",
        description=(
            "Train a policy. --env takes an env id or a task card (shipped: " + ", ".join(card_names()) + ")."
        ),
    )
    train.add_argument(
        "--env", help="env id, 'my_package:MyEnv-v0' (imports my_package, which registers the id), "
        "or a task card (.toml)")
    train.add_argument("--algo", choices=list(ALGORITHMS), help="optimizer (default: the card's, else es)")
    train.add_argument("--popsize", type=int, help="members per generation")
    train.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    train.add_argument("--backend", choices=list(BACKENDS), help="env backend")
    train.add_argument("--policy", choices=["linear", "mlp", "cnn", "module"],
                       help="policy architecture (cnn: a conv net over image observations, policy.arch)")
    add_user_code_arguments(train)
    budget = train.add_argument_group("budget (any of these replaces the card's budget)")
    budget.add_argument("--generations", type=int, metavar="N", help="stop after N generations")
    budget.add_argument("--steps", type=int, metavar="N", help="stop once N training env steps are taken")
    budget.add_argument("--target", type=float, metavar="RETURN",
                        help="stop once the evaluated solution's mean return reaches RETURN")
    train.add_argument("--seed", type=int, help="run seed: every random draw is a function of it and the generation")
    where = train.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="DIR", help="run directory of a new run (config, metrics, checkpoints); "
                       "a new run needs it, a resumed one takes --resume instead")
    where.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any setting of the task card, e.g. --set es.sigma=0.05 --set policy.hidden=[32,32] "
        "(the value is read as TOML; every setting: docs/reference/task-cards.md)",
    )
    train.add_argument("--compile", action="store_true", help="torch.compile the rollout step")
    train.add_argument("--config", action="append", metavar="FILE",
                       help="a TOML overlay of task-card settings (e.g. neuroevo tune's best.toml), over the card and "
                       "under the other flags")
    add_log_arguments(train)
    ray = train.add_argument_group("distributed evaluation (Ray)")
    ray.add_argument("--workers", type=int, help="evaluate the population on N Ray worker actors (0: in this process)")
    ray.add_argument(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="join this Ray cluster (default: start a local instance bound to 127.0.0.1)",
    )
    ray.add_argument("--ray-dashboard", action="store_true", help="start the local Ray instance's dashboard")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a saved policy")
    ev.add_argument("checkpoint", help="best_policy.pt, checkpoints/last.pt, or a run directory")
    ev.add_argument("--env", help="env id (default: the env it was trained on)")
    ev.add_argument("--episodes", type=int, default=100, help="episodes to play (default 100)")
    ev.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="gymnasium",
        help="default gymnasium: the reference implementation",
    )
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--video", metavar="PATH", help="also render one episode on gymnasium's env to PATH (.mp4)")
    ev.add_argument("--video-steps", type=int, metavar="N",
                    help="end the video's episode after N env steps (default: the env's own limit)")
    ev.add_argument("--policy-module", metavar="MODULE:CLASS",
                    help="the nn.Module class of a policy trained as an object (a run whose config names it "
                    "needs nothing)")
    ev.add_argument("--policy-kwargs", nargs="+", metavar="KEY=VALUE", help="its constructor's arguments")
    ev.set_defaults(func=cmd_eval)

    from neuroevo import bench

    b = sub.add_parser("bench", help="throughput benchmark (env steps/s, member forwards vs bandwidth)")
    bench.add_arguments(b)
    b.set_defaults(func=cmd_bench)

    from neuroevo.compare import ALGOS, DEFAULT_ALGOS

    cmp = sub.add_parser(
        "compare",
        help="optimizers and the SB3 baselines (PPO, SAC, TD3) on one task under one env-step budget, with a report",
        description="Train each algorithm for each seed into OUT/<algo>/seed<k>/ (finished runs are kept and "
        "skipped on a rerun), then write OUT/report.md and PNG learning curves.",
    )
    cmp.add_argument("task", help="env id with a task card, or a card path")
    cmp.add_argument(
        "--algos",
        default=",".join(DEFAULT_ALGOS),
        help=f"comma-separated, from {','.join(ALGOS)} (default {','.join(DEFAULT_ALGOS)})",
    )
    cmp.add_argument("--steps", type=int, help="training env steps per run (default: the RL Zoo's PPO budget)")
    cmp.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 (default 3)")
    cmp.add_argument("--out", required=True, help="comparison directory")
    cmp.add_argument("--threads", type=int, default=1, help="torch CPU threads of every run (default 1)")
    cmp.add_argument("--archive", metavar="DIR", help="keep every finished run's record (results, curve, settings; "
                     "no checkpoints) in DIR too, and skip the runs recorded there; a stopped run with a checkpoint "
                     "of at most 1 MB (GA, random search) is kept too and continued from it: commit DIR to carry a "
                     "long comparison across machines or sessions")
    cmp.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every run")
    cmp.add_argument("--log", metavar="FORMATS", help="output formats of every run (see train --log)")
    cmp.add_argument("--command-line", help=argparse.SUPPRESS)
    cmp.set_defaults(func=cmd_compare)

    from neuroevo.tune import add_arguments as add_tune_arguments

    tn = sub.add_parser(
        "tune",
        help="search an optimizer's settings with Optuna (TPE, median pruning), like the RL Zoo's --optimize",
        description="Train --trials runs of --algo on TASK with settings drawn from its search space, each under "
        "--budget env steps, pruned on evaluations at --marks env-step marks; the study lives in OUT/study.journal "
        "(a rerun continues it) and the best settings in OUT/best.toml (neuroevo train --config).",
    )
    add_tune_arguments(tn)
    tn.set_defaults(func=cmd_tune)

    rep = sub.add_parser("report", help="rebuild a comparison's report from its saved runs")
    rep.add_argument("dir", help="a neuroevo compare --out directory")
    rep.add_argument("--out", help="where to write report.md, the PNGs and summary.json (default DIR)")
    rep.set_defaults(func=cmd_report)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"neuroevo: {category.__name__}: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    shown, warnings.showwarning = warnings.showwarning, _one_line_warning
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError, ImportError) as err:
        print(f"neuroevo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neuroevo {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
