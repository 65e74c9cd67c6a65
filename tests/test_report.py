"""The comparison report on hand-made curves: threshold crossings, the summary rows, the markdown table, the
seed bands on a common grid, and the files write_report leaves."""

import json
import math

import numpy as np
import pytest

from neuroevo.compare import Comparison, Run
from neuroevo.report import band, first_reach, render, summarize, table, write_report

THRESHOLD = 100.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(algo, seed, steps, walls, returns, env_steps=None):
    curve = [{"env_steps": s, "wall": w, "return": r} for s, w, r in zip(steps, walls, returns, strict=True)]
    result = {
        "algo": algo,
        "seed": seed,
        "env_steps": steps[-1] if env_steps is None else env_steps,
        "wall_time": walls[-1],
        "final_return": returns[-1],
        "best_return": max(returns),
        "load_average_start": [0.5 + seed, 0.4, 0.3],
        "load_average_end": [1.5 + seed, 0.4, 0.3],
    }
    return Run(algo, seed, result, curve)


# es: both seeds cross 100, seed 0 first at 3000 steps (3 s), seed 1 exactly at 100 at 2000 steps (4 s) and
#     later dips below it again.  ga: never reaches 100 (99.9 at best), and its seeds evaluate at other steps.
ES = [
    _run("es", 0, [1000, 2000, 3000, 4000], [1, 2, 3, 4], [10, 50, 120, 150]),
    _run("es", 1, [1000, 2000, 3000, 4000], [2, 4, 6, 8], [20, 100, 140, 130], env_steps=4100),
]
GA = [
    _run("ga", 0, [500, 1500, 2500, 3500], [30, 90, 150, 240], [0, 10, 30, 40]),
    _run("ga", 1, [1000, 2000, 3000, 4000], [60, 120, 240, 360], [5, 20, 99.9, 60]),
]


def _comparison(threshold=THRESHOLD, info=None) -> Comparison:
    """2 algorithms x 2 seeds finished; ars was asked for but has no finished run."""
    info = info if info is not None else {"machine": {"cpus": 2, "cuda": False}, "threads": 1}
    return Comparison(
        task="T-v0",
        env_id="T-v0",
        threshold=threshold,
        steps=4000,
        seeds=[0, 1],
        algos=["es", "ga", "ars"],
        runs={"es": list(ES), "ga": list(GA), "ars": []},
        info=info,
    )


# -- first_reach ----------------------------------------------------------------------------------


def test_first_reach_is_the_first_evaluation_at_or_above_the_threshold():
    assert first_reach(ES[0].curve, THRESHOLD) is ES[0].curve[2]
    assert first_reach(ES[1].curve, THRESHOLD) is ES[1].curve[1]  # equal counts; the later dip does not matter
    assert first_reach(ES[1].curve, 135.0) is ES[1].curve[2]
    assert first_reach(GA[1].curve, THRESHOLD) is None  # 99.9 is not 100
    assert first_reach(GA[1].curve, 99.9)["env_steps"] == 3000
    assert first_reach(ES[0].curve, None) is None
    assert first_reach([], THRESHOLD) is None
    assert first_reach(ES[0].curve, -1e9) is ES[0].curve[0]


# -- summarize and table --------------------------------------------------------------------------


def test_summarize_rows():
    es, ga = summarize(_comparison())  # ars: no finished run, no row
    assert es == {
        "algo": "es",
        "seeds": 2,
        "final_return_mean": 140.0,
        "final_return_std": 10.0,  # population std over seeds
        "best_return_mean": 145.0,
        "seeds_reaching": 2,
        "steps_to_threshold": 2500,  # median of 3000 and 2000
        "wall_to_threshold": 3.5,  # median of 3 and 4
        "wall_time_mean": 6.0,
        "env_steps_mean": 4050.0,
    }
    assert ga["algo"] == "ga" and ga["seeds"] == 2
    assert ga["final_return_mean"] == pytest.approx(50.0) and ga["final_return_std"] == pytest.approx(10.0)
    assert ga["best_return_mean"] == pytest.approx(69.95)
    assert (ga["seeds_reaching"], ga["steps_to_threshold"], ga["wall_to_threshold"]) == (0, None, None)
    assert ga["wall_time_mean"] == 300.0 and ga["env_steps_mean"] == 3750.0


def test_summarize_median_over_the_seeds_that_reached():
    comparison = _comparison()
    comparison.runs["es"].append(_run("es", 2, [1000, 2000, 3000], [1, 2, 3], [0, 0, 0]))  # never reaches
    comparison.runs["es"].append(_run("es", 3, [500, 1000], [0.5, 1], [200, 200]))  # at once
    es = summarize(comparison)[0]
    assert es["seeds"] == 4 and es["seeds_reaching"] == 3
    assert es["steps_to_threshold"] == 2000  # median of 3000, 2000, 500
    assert es["wall_to_threshold"] == 3.0  # median of 3, 4, 0.5


def test_summarize_without_threshold_reaches_nothing():
    for row in summarize(_comparison(threshold=None)):
        assert (row["seeds_reaching"], row["steps_to_threshold"], row["wall_to_threshold"]) == (0, None, None)


def test_table_shows_the_rows():
    comparison = _comparison()
    lines = table(comparison, summarize(comparison)).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| algorithm | final return (mean ± std) | seeds |")
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2] == "| ES | 140.0 ± 10.0 | 2 | 2.5k | 3.5 s | 2/2 | 6.0 s |"
    assert lines[3] == "| GA | 50.0 ± 10.0 | 2 | not reached | not reached | 0/2 | 5.0 min |"


def test_table_units():
    row = {"algo": "mine", "seeds": 1, "final_return_mean": 1.26, "final_return_std": 0.0, "seeds_reaching": 1,
           "steps_to_threshold": 2_345_678, "wall_to_threshold": 119.94, "wall_time_mean": 150.0}
    assert table(_comparison(), [row]).splitlines()[2] == "| mine | 1.3 ± 0.0 | 1 | 2.35M | 119.9 s | 1/1 | 2.5 min |"
    row["steps_to_threshold"] = 999
    assert "| 999 |" in table(_comparison(), [row])


# -- band -----------------------------------------------------------------------------------------


def test_band_on_env_steps_interpolates_where_all_seeds_have_data():
    # the common range is [max of firsts, min of lasts] = [1000, 3500]; 6 points fall on multiples of 500
    x, mean, low, high = band(GA, "env_steps", points=6)
    np.testing.assert_allclose(x, [1000, 1500, 2000, 2500, 3000, 3500])
    seed0 = np.array([5, 10, 20, 30, 35, 40])  # (500, 0) (1500, 10) (2500, 30) (3500, 40), linearly
    seed1 = np.array([5, 12.5, 20, 59.95, 99.9, 79.95])  # (1000, 5) (2000, 20) (3000, 99.9) (4000, 60)
    np.testing.assert_allclose(mean, (seed0 + seed1) / 2)
    np.testing.assert_allclose(low, np.minimum(seed0, seed1))
    np.testing.assert_allclose(high, np.maximum(seed0, seed1))
    x, mean, low, high = band(GA, "env_steps")
    assert x.shape == mean.shape == low.shape == high.shape == (200,)
    assert (x[0], x[-1]) == (1000, 3500) and (low <= mean).all() and (mean <= high).all()


def test_band_on_wall_time_uses_a_geometric_grid():
    x, mean, low, high = band(ES, "wall", points=3)  # common range [2, 4] s
    np.testing.assert_allclose(x, [2, 2 * math.sqrt(2), 4])
    mid = 2 * math.sqrt(2)
    seed0 = [50, 50 + (mid - 2) * 70, 150]  # (2, 50) -> (3, 120), then (4, 150)
    seed1 = [20, 20 + (mid - 2) / 2 * 80, 100]  # (2, 20) -> (4, 100)
    np.testing.assert_allclose(mean, (np.array(seed0) + seed1) / 2)
    np.testing.assert_allclose(low, seed1)
    np.testing.assert_allclose(high, seed0)
    # from wall time 0, a log grid is impossible: a linear one
    runs = [_run("es", 0, [0, 10], [0.0, 2.0], [0, 20]), _run("es", 1, [0, 10], [0.0, 4.0], [0, 40])]
    x, mean, _, _ = band(runs, "wall", points=5)
    np.testing.assert_allclose(x, [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(mean, [0, 5, 10, 15, 20])


def test_band_without_overlap_falls_back_to_the_first_seed_and_skips_empty_curves():
    early = _run("es", 0, [100, 200], [1, 2], [1, 3])
    late = _run("es", 1, [300, 400], [3, 4], [10, 30])
    empty = Run("es", 2, early.result, [])
    x, mean, low, high = band([empty, early, late], "env_steps")
    np.testing.assert_array_equal(x, [100, 200])
    for y in (mean, low, high):
        np.testing.assert_array_equal(y, [1, 3])
    single = _run("es", 0, [500], [1], [7])
    x, mean, _, _ = band([single, _run("es", 1, [500], [2], [9])], "env_steps")
    np.testing.assert_array_equal(x, [500])
    np.testing.assert_array_equal(mean, [7])


# -- render and write_report ----------------------------------------------------------------------


def test_write_report_writes_the_markdown_the_plots_and_the_summary(tmp_path):
    comparison = _comparison()
    with pytest.raises(ValueError, match="needs an output directory"):
        write_report(comparison)
    out = tmp_path / "new" / "report"
    result = write_report(comparison, out, command="neuroevo compare T-v0 --seeds 2")
    names = ["return_vs_env_steps.png", "return_vs_wall_time.png", "report.md", "summary.json"]
    assert result["files"] == [out / name for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert result["rows"] == summarize(comparison)

    for name in names[:2]:
        data = (out / name).read_bytes()
        assert len(data) > 1000 and data[:8] == PNG_MAGIC

    text = (out / "report.md").read_text()
    assert text.startswith("# T-v0: evolution vs policy gradients\n")
    assert "Budget 4000 training env steps per run, seeds 0, 1; threshold 100 (the task card's)" in text
    assert table(comparison, result["rows"]) in text
    assert "![return vs env steps](return_vs_env_steps.png)" in text
    assert "Machine: 2 CPUs, torch on 1 thread(s)" in text and "0.50 to 2.50 (mean 1.50)" in text
    assert "Not finished (left out): ars seed 0, ars seed 1." in text
    assert text.endswith("```bash\nneuroevo compare T-v0 --seeds 2\n```\n")

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == json.loads(json.dumps(summarize(comparison)))
    assert summary["info"] == comparison.info
    assert [(r["algo"], r["seed"]) for r in summary["runs"]] == [("es", 0), ("es", 1), ("ga", 0), ("ga", 1)]
    assert summary["runs"][1]["result"] == ES[1].result
    assert summary["runs"][1]["curve"] == [[1000, 2, 20], [2000, 4, 100], [3000, 6, 140], [4000, 8, 130]]

def test_the_machine_line_names_each_runs_threads_where_they_differ():
    """compare.json keeps the last call's threads; a run's own record wins, and runs that differ are named."""
    comparison = _comparison(info={"machine": {"cpus": 2, "cuda": False}, "threads": 2})
    assert "torch on 2 thread(s);" in render(comparison, summarize(comparison))  # no run records its own
    for run in comparison.runs["es"] + comparison.runs["ga"]:
        run.result["threads"] = 1
    assert "torch on 1 thread(s);" in render(comparison, summarize(comparison))
    comparison.runs["ga"][1] = _run("ga", 1, [1000], [60], [5])
    comparison.runs["ga"][1].result["threads"] = 2
    text = render(comparison, summarize(comparison))
    assert "torch on threads by run (es seed 0: 1; es seed 1: 1; ga seed 0: 1; ga seed 1: 2);" in text



def test_write_report_takes_the_command_from_the_comparison(tmp_path):
    comparison = _comparison(info={"command": "neuroevo compare T-v0"})
    write_report(comparison, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "Produced by:" in text and text.endswith("```bash\nneuroevo compare T-v0\n```\n")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ({"steps": 4000, "return": 135.0, "std": 10.0}, "our PPO's final return 140.0 (mean over 2 seeds) is within"),
        ({"steps": 4000, "return": 120.0, "std": 10.0}, "our PPO's final return 140.0 (mean over 2 seeds) is above"),
        ({"steps": 4000, "return": 160.0, "std": 10.0}, "our PPO's final return 140.0 (mean over 2 seeds) is below"),
        ({"steps": 8000, "return": 135.0, "std": 10.0}, "this budget differs, so there is no like-for-like check"),
        ({"steps": 4000, "return": None, "std": None}, "benchmark.md lists no PPO number for this task"),
    ],
)
def test_render_checks_ppo_against_the_zoo_reference(reference, expected):
    comparison = _comparison(info={"ppo_source": "rl-zoo hyperparams/ppo.yml", "ppo_reference": reference})
    comparison.algos = ["ppo"]
    comparison.runs = {"ppo": [Run("ppo", r.seed, r.result, r.curve) for r in ES]}
    assert expected in render(comparison, summarize(comparison))
    comparison.info["ppo_source"] = None
    assert "PPO ran with Stable-Baselines3's default hyperparameters" in render(comparison, summarize(comparison))
