"""Print one markdown table over the committed comparisons (results/compare/*/summary.json): for each task,
the final return (mean ± std over seeds) and the median env steps / wall time to the threshold of each
algorithm. The docs' "Evolution vs policy gradients" table (docs/results/compare.md) is this script's output.

    .venv/bin/python scripts/compare_table.py [results/compare/CartPole-v1 ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAMES = {"es": "ES", "ga": "GA", "ars": "ARS", "ppo": "PPO"}


def _steps(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _seconds(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s"


def cell(row: dict) -> str:
    text = f"{row['final_return_mean']:.0f} ± {row['final_return_std']:.0f}"
    if row["steps_to_threshold"] is None:
        return f"{text}; not reached"
    reach = f"{row['seeds_reaching']}/{row['seeds']}"
    return f"{text}; {_steps(row['steps_to_threshold'])} steps, {_seconds(row['wall_to_threshold'])} ({reach})"


def main(dirs: list[str]) -> None:
    paths = [Path(d) for d in dirs] or sorted(Path("results/compare").iterdir())
    print("| task (budget, threshold) | " + " | ".join(NAMES.values()) + " |")
    print("|---|" + "---|" * len(NAMES))
    for path in paths:
        summary = json.loads((path / "summary.json").read_text())
        info, rows = summary["info"], {r["algo"]: r for r in summary["rows"]}
        cells = [cell(rows[a]) if a in rows else "–" for a in NAMES]
        print(f"| {path.name} ({_steps(info['steps'])}, {info['threshold']:g}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
