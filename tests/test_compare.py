"""neuroevo compare / report: tiny real comparisons, the table's arithmetic, reruns and bad input."""

import json
import shutil
from pathlib import Path

import pytest

from neuroevo.cli import main
from neuroevo.compare import (
    ARCHIVE_CHECKPOINT_LIMIT,
    RECORD_FILES,
    RESUME_FILES,
    Comparison,
    Run,
    load_comparison,
    parse_algos,
    read_curve,
    run_comparison,
)
from neuroevo.report import summarize, table, write_report

# Small populations and short PPO updates so that every run on CartPole takes about a second.
TINY = {
    "run": {"eval_episodes": 5},
    "es": {"popsize": 8},
    "ga": {"popsize": 8, "truncation": 4, "num_elites": 2},
    "ars": {"popsize": 4},
    "ppo": {"n_epochs": 2, "eval_points": 4},
}
STEPS = 4000  # one generation of 8 members x 500 steps


@pytest.fixture(scope="module")
def comparison_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cartpole"
    run_comparison("CartPole-v1", "es,ga,ars,ppo", STEPS, 2, out, TINY)
    return out


def test_compare_writes_every_run_and_a_report(comparison_dir):
    for algo in ("es", "ga", "ars", "ppo"):
        for seed in (0, 1):
            run = comparison_dir / algo / f"seed{seed}"
            result = json.loads((run / "result.json").read_text())
            assert result["env_steps"] >= STEPS and result["seed"] == seed
            assert result["threads"] == 1  # run_comparison's default, set for every run
            assert (run / "metrics.jsonl").exists() and (run / "progress.csv").exists()  # one logger for all
    report = write_report(load_comparison(comparison_dir), comparison_dir)
    text = (comparison_dir / "report.md").read_text()
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and " ± " in line and "mean" not in line]
    assert [row.split("|")[1].strip() for row in table_rows] == ["ES", "GA", "ARS", "PPO (SB3)"]
    assert "Machine: " in text and "torch on 1 thread(s)" in text and "load average" in text
    for name in ("return_vs_env_steps.png", "return_vs_wall_time.png"):
        assert (comparison_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((comparison_dir / "summary.json").read_text())
    assert [row["algo"] for row in summary["rows"]] == ["es", "ga", "ars", "ppo"] == [r["algo"] for r in report["rows"]]
    assert len(summary["runs"]) == 8 and all(run["curve"] for run in summary["runs"])


def test_report_command_rebuilds_the_same_report(comparison_dir, tmp_path, capsys):
    write_report(load_comparison(comparison_dir), comparison_dir)
    assert main(["report", str(comparison_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == (comparison_dir / "report.md").read_text()
    assert "report.md" in capsys.readouterr().out


def test_rerun_skips_finished_runs_and_redoes_an_unfinished_one(comparison_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(comparison_dir, out)
    (out / "ppo" / "seed1" / "result.json").unlink()  # as if killed before it finished
    (out / "ga" / "seed0" / "metrics.jsonl").write_text("")  # a killed evolution run without checkpoint...
    shutil.rmtree(out / "ga" / "seed0" / "checkpoints")
    (out / "ga" / "seed0" / "result.json").unlink()
    kept = (out / "es" / "seed0" / "metrics.jsonl").read_text()
    statuses = []
    run_comparison("CartPole-v1", "es,ga,ars,ppo", STEPS, 2, out, TINY, on_run=lambda *call: statuses.append(call))
    started = [(a, s) for a, s, st in statuses if st == "start"]
    assert started == [("ga", 0), ("ppo", 1)]
    assert (out / "es" / "seed0" / "metrics.jsonl").read_text() == kept
    redone = json.loads((out / "ppo" / "seed1" / "result.json").read_text())
    original = json.loads((comparison_dir / "ppo" / "seed1" / "result.json").read_text())
    assert redone["final_return"] == original["final_return"]  # the same seed gives the same run


def test_an_archive_carries_finished_runs_to_a_fresh_directory(comparison_dir, tmp_path):
    archive = tmp_path / "archive"
    run_comparison("CartPole-v1", "es,ppo", STEPS, 2, shutil.copytree(comparison_dir, tmp_path / "a"), TINY,
                   archive=archive)
    assert sorted(p.name for p in (archive / "ppo" / "seed1").iterdir()) == sorted(RECORD_FILES)  # no checkpoints
    earlier = json.loads((archive / "compare.json").read_text())  # as if recorded by an earlier session
    (archive / "compare.json").write_text(json.dumps(earlier | {"started": "2000-01-01 00:00:00",
                                                                "commands": ["an earlier command"]}))
    statuses = []
    fresh = run_comparison("CartPole-v1", "ppo,es", STEPS, 2, tmp_path / "b", TINY, archive=archive,
                           on_run=lambda *call: statuses.append(call), command="the rerun")
    assert {status for *_, status in statuses} == {"skip"}  # nothing retrained
    recorded = json.loads((archive / "compare.json").read_text())
    assert recorded["algos"] == ["ppo", "es"]  # the command's order
    assert recorded["started"] == "2000-01-01 00:00:00"  # the first start, and every command, kept
    assert recorded["commands"] == ["an earlier command", "the rerun"]
    original = load_comparison(comparison_dir)
    for compared in (fresh, load_comparison(archive)):  # the archive is a comparison of its own, for reports
        for algo in ("es", "ppo"):
            assert [r.result for r in compared.runs[algo]] == [r.result for r in original.runs[algo]]
            assert [r.curve for r in compared.runs[algo]] == [r.curve for r in original.runs[algo]]
    with pytest.raises(ValueError, match="archive holds a comparison of CartPole-v1 at 4000 steps"):
        run_comparison("CartPole-v1", "es", 2 * STEPS, 1, tmp_path / "c", TINY, archive=archive)


def test_calls_with_different_seeds_per_algorithm_make_one_comparison(comparison_dir, tmp_path):
    """The GA on 2 seeds, then the baseline on 1 into the same directory: nothing reported as unfinished, both
    commands kept; a seed asked later of the baseline is reported missing until it runs."""
    out = shutil.copytree(comparison_dir, tmp_path / "split")
    (out / "compare.json").unlink()
    run_comparison("CartPole-v1", "ga", STEPS, 2, out, TINY, command="neuroevo compare CartPole-v1 --algos ga")
    comparison = run_comparison("CartPole-v1", "ppo", STEPS, 1, out, TINY,
                                command="neuroevo compare CartPole-v1 --algos ppo --seeds 1")
    assert comparison.planned == {"ga": [0, 1], "ppo": [0]}
    assert [len(comparison.runs[algo]) for algo in ("ga", "ppo")] == [2, 1]
    write_report(comparison, out)
    text = (out / "report.md").read_text()
    assert [line for line in text.splitlines() if "Not finished" in line] == []
    assert "--algos ga\nneuroevo compare CartPole-v1 --algos ppo --seeds 1\n" in text
    info = json.loads((out / "compare.json").read_text())
    info["planned"]["ppo"] = [0, 7]
    (out / "compare.json").write_text(json.dumps(info))
    write_report(load_comparison(out), out)
    assert "Not finished (left out): ppo seed 7." in (out / "report.md").read_text()


def test_an_interrupted_evolution_run_continues_from_its_checkpoint(comparison_dir, tmp_path):
    from neuroevo import Trainer
    from neuroevo.compare import run_config

    out = tmp_path / "resume"
    config = run_config("CartPole-v1", "es", 0, STEPS * 3, TINY)
    config.run.generations = 2  # stands in for a kill after generation 2 (checkpointed, no result.json)
    Trainer(config, out / "es" / "seed0").run()
    run_comparison("CartPole-v1", "es", STEPS * 3, [0], out, TINY)
    resumed = [json.loads(x) for x in (out / "es" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    fresh = tmp_path / "fresh"
    run_comparison("CartPole-v1", "es", STEPS * 3, [0], fresh, TINY)
    straight = [json.loads(x) for x in (fresh / "es" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in resumed] == list(range(1, len(resumed) + 1))
    assert [r["eval/return_mean"] for r in resumed] == [r["eval/return_mean"] for r in straight]


def test_an_archive_carries_an_interrupted_ga_run_to_another_machine(tmp_path, monkeypatch):
    """Stopped by a signal, a GA run leaves its checkpoint (its members and best policy named by lineages: a few
    KB) in the archive; a fresh directory, another machine's, continues it to the uninterrupted run's curve."""
    import os
    import signal

    from neuroevo import Trainer

    original_step = Trainer.step

    def step_then_stop(self):
        row = original_step(self)
        if self.generation == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the end of a session
        return row

    monkeypatch.setattr(Trainer, "step", step_then_stop)
    archive = tmp_path / "archive"
    with pytest.raises(KeyboardInterrupt):
        run_comparison("CartPole-v1", "ga", STEPS * 3, [0], tmp_path / "a", TINY, archive=archive)
    monkeypatch.setattr(Trainer, "step", original_step)
    kept = archive / "ga" / "seed0"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == sorted(RESUME_FILES)
    assert (kept / "checkpoints" / "last.pt").stat().st_size <= ARCHIVE_CHECKPOINT_LIMIT
    stopped = (tmp_path / "a" / "ga" / "seed0" / "metrics.jsonl").read_text().splitlines()
    run_comparison("CartPole-v1", "ga", STEPS * 3, [0], tmp_path / "b", TINY, archive=archive)
    continued = (tmp_path / "b" / "ga" / "seed0" / "metrics.jsonl").read_text().splitlines()
    assert len(stopped) == 2 and continued[:2] == stopped  # the same rows, wall times included: not run again
    assert sorted(p.name for p in kept.iterdir()) == sorted(RECORD_FILES)  # finished: the record alone
    run_comparison("CartPole-v1", "ga", STEPS * 3, [0], tmp_path / "straight", TINY)
    carried, straight = (read_curve(tmp_path / d / "ga" / "seed0" / "metrics.jsonl") for d in ("b", "straight"))
    assert [r["return"] for r in carried] == [r["return"] for r in straight] and len(carried) > 2


def _run(algo, seed, points, wall_per_step=0.001):
    curve = [{"env_steps": s, "wall": s * wall_per_step, "return": r} for s, r in points]
    result = {"final_return": points[-1][1], "best_return": max(r for _, r in points), "wall_time": curve[-1]["wall"],
              "env_steps": points[-1][0]}
    return Run(algo, seed, result, curve)


def test_summary_statistics_of_the_table():
    runs = {
        "es": [_run("es", 0, [(100, 10), (200, 480), (300, 500)]), _run("es", 1, [(100, 50), (200, 60), (300, 476)]),
               _run("es", 2, [(100, 20), (200, 30), (300, 40)])],
        "ppo": [_run("ppo", 0, [(150, 0), (300, 100)])],
    }
    comparison = Comparison("T", "T-v0", 475.0, 300, [0, 1, 2], ["es", "ppo"], runs, {})
    es, ppo = summarize(comparison)
    assert es["final_return_mean"] == pytest.approx((500 + 476 + 40) / 3)
    assert es["seeds_reaching"] == 2
    assert es["steps_to_threshold"] == 250  # median of 200 and 300, over the seeds that reached it
    assert es["wall_to_threshold"] == pytest.approx(0.25)
    assert ppo["seeds_reaching"] == 0 and ppo["steps_to_threshold"] is None
    text = table(comparison, [es, ppo])
    assert "| ES | 338.7 ± 211.4 | 3 | 250 | 0.2 s | 2/3 |" in text  # std over seeds (population std)
    assert "| PPO (SB3) | 100.0 ± 0.0 | 1 | not reached | not reached | 0/1 |" in text


def test_unknown_algorithm_lists_the_valid_ones(tmp_path, capsys):
    assert main(["compare", "CartPole-v1", "--algos", "es,sgd", "--steps", "100000", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown algorithm 'sgd'" in err and "es, eggroll, ga, ars" in err and "ppo" in err
    with pytest.raises(ValueError, match="unknown algorithm"):
        parse_algos(["es", "trpo"])


def test_too_small_budget_names_the_minimum(tmp_path, capsys):
    assert main(["compare", "CartPole-v1", "--algos", "ga,ppo", "--steps", "1000", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "too small for one generation of ga on CartPole-v1 (64 members x 1 episode x 500 steps)" in err
    assert "--steps 32000 or more" in err
    assert not (tmp_path / "c").exists()  # nothing ran


def test_task_without_ppo_settings_falls_back_to_sb3_defaults(tmp_path):
    card = Path(__file__).parents[1] / "envs" / "CartPole-v1.toml"
    text = card.read_text()
    custom = tmp_path / "MyCartPole.toml"
    custom.write_text(text[: text.index("\n# PPO baseline")] + "\n")  # the card without its [ppo] table
    tiny = {**TINY, "ppo": {"n_steps": 128, "n_epochs": 1, "eval_points": 1}}
    with pytest.warns(UserWarning, match="no PPO hyperparameters from the RL Zoo.*Stable-Baselines3's defaults"):
        comparison = run_comparison(str(custom), "ppo", 256, 1, tmp_path / "out", tiny)
    assert comparison.runs["ppo"][0].result["env_steps"] >= 256
    write_report(comparison, tmp_path / "out")
    assert "Stable-Baselines3's default hyperparameters" in (tmp_path / "out" / "report.md").read_text()
