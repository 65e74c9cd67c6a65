"""``neuroevo bench`` runs end to end through its flags; its figures are never asserted on."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from neuroevo import bench


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_bench_returns_and_writes_figures(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "bench" / "figures.json"
    # One torch thread: on a busy 2-core machine, intra-op threads wait on each other for milliseconds.
    flags = ["--quick", "--envs", "8", "--gym-envs", "4", "--popsizes", "8,32", "--threads", "1", "--modes", "eager"]
    args = parser.parse_args([*flags, "--json", str(out)])
    figures = bench.main(args)

    assert set(figures) == {"meta", "evaluation", "bandwidth", "forward", "notes"}
    devices = figures["meta"]["devices"]
    assert "cpu" in devices
    # Part 1: gymnasium once per policy, plus each device's torch backend per policy.
    assert len(figures["evaluation"]) == 2 * (1 + len(devices))
    for row in figures["evaluation"]:
        assert {row["backend"], row["policy"]} <= {"gymnasium", "torch", "linear", "mlp"}
        for key in ("env_steps", "seconds", "env_steps_per_s", "mean_episode_length", "vs_gymnasium"):
            assert _positive_finite(row[key]), (key, row)
    # Part 2: one bandwidth bound per device, one forward row per device and population size.
    assert set(figures["bandwidth"]) == set(devices)
    for bw in figures["bandwidth"].values():
        assert all(_positive_finite(bw[k]) for k in ("sum_gb_per_s", "copy_gb_per_s", "bound_gb_per_s"))
    assert sorted(r["popsize"] for r in figures["forward"]) == sorted([8, 32] * len(devices))
    for row in figures["forward"]:
        for key in ("seconds_per_call", "members_per_s", "param_gb_per_s", "percent_of_bound"):
            assert _positive_finite(row[key]), (key, row)

    assert json.loads(out.read_text()) == json.loads(json.dumps(figures))
    report = capsys.readouterr().out
    assert "gymnasium" in report and "% bound" in report


def test_unknown_mode_is_refused():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(ValueError, match="--modes takes a comma-separated subset of eager, compiled"):
        bench.main(parser.parse_args(["--quick", "--modes", "jit"]))
