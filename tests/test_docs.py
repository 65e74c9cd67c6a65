"""The docs: the site builds with warnings as errors, and every code block of README.md and docs/ runs.

- ```python blocks of a page run in order, in one namespace, in a temporary working directory.
- ```bash blocks run command by command: ``neuroevo ...`` (or ``.venv/bin/neuroevo ...``) in-process through
  ``neuroevo.cli.main``, with the budget caps of :func:`capped`; ``[.venv/bin/]python ...`` as a subprocess.
- A block right under a line ``*Not run by the tests: REASON ...*`` is skipped and counted per reason
  (:data:`EXPECTED_SKIPS`); its Python is still compiled and its ``neuroevo`` commands still parsed by the CLI's
  parser (and ``train`` overrides checked against the config), so a renamed flag or setting fails here too.
- Other fences (``text``, ``toml``) are output, diagrams or generated text, and are not run.

docs/reference/examples.md says the same to the reader; keep the two in step.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

from neuroevo.algorithms import ALGORITHMS
from neuroevo.cli import _train_overrides, build_parser, main
from neuroevo.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_hooks" not in p.parts)]
#: why a block may be skipped; every skip names one of these in its visible marker line
REASONS = ("needs GPU", "needs cluster", "long run", "installs packages")
#: how many blocks each reason skips: a new skip is a visible change here, not a silent one
EXPECTED_SKIPS = {"needs GPU": 4, "needs cluster": 4, "long run": 20, "installs packages": 8}
MARKER = re.compile(r"^\*Not run by the tests: (?P<reason>[^(.*]+?)(?: \(.*\))?\.?\*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
RUN = ("python", "bash")
#: task-card settings without a docstring in the code (none now): a new undocumented setting fails
#: test_every_task_card_setting_is_documented.
UNDOCUMENTED: set[str] = set()


@dataclasses.dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None  # the marker's reason, or None: the block runs

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, each with the skip reason of a marker line right above it."""
    lines = page.read_text().splitlines()
    out, i, marker = [], 0, None
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence is None:
            if line.startswith("*Not run by the tests"):
                match = MARKER.match(line)
                if match is None or match["reason"] not in REASONS:
                    raise AssertionError(f"{page.name}:{i + 1}: marker {line!r}: the reason must be one of {REASONS}")
                marker = (match["reason"], i + 1)
            elif line.strip() and marker is not None:
                raise AssertionError(f"{page.name}:{marker[1]}: a marker must sit right above a code block")
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and lines[i].strip() != fence["fence"]:
            body.append(lines[i][len(fence["indent"]):])
            i += 1
        out.append(Block(page, start + 1, fence["lang"], "\n".join(body) + "\n", marker[0] if marker else None))
        marker = None
        i += 1
    return out


def commands(code: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", code)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def capped(argv: list[str]) -> list[str]:
    """A ``neuroevo`` command with the tests' budget caps: at most 3 generations (2 where the card's own budget
    would run; the same for a --target alone), 20,000 training env steps, 5 evaluation episodes, 1 seed, 2 tuning
    trials of 2,000 env steps."""
    argv = list(argv)

    def cap(flag: str, most: int) -> None:
        if flag in argv:
            i = argv.index(flag) + 1
            argv[i] = str(min(int(argv[i]), most))

    if argv[0] == "train":
        cap("--generations", 3)
        cap("--steps", 20_000)
        if "--resume" not in argv and "--generations" not in argv and "--steps" not in argv:
            argv += ["--generations", "2"]
    elif argv[0] == "eval":
        cap("--episodes", 5)
        if "--episodes" not in argv:
            argv += ["--episodes", "5"]
    elif argv[0] == "compare":
        cap("--steps", 20_000)
        cap("--seeds", 1)
    elif argv[0] == "tune":
        cap("--trials", 2)
        cap("--budget", 2_000)
    return argv


def neuroevo_args(argv: list[str]) -> list[str] | None:
    """The arguments of a ``neuroevo`` command (None for another program)."""
    return argv[1:] if argv[0] in ("neuroevo", ".venv/bin/neuroevo") else None


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


# -- the site --------------------------------------------------------------------------------------------------------
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    cards = (site / "reference" / "task-cards" / "index.html").read_text()
    for section in ["env", "policy", "run", "ppo", *ALGORITHMS]:
        assert f"<code>[{section}]</code>" in cards, f"the task-card reference has no [{section}] section"
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("train", "eval", "bench", "bench ray", "bench warp", "compare", "report"):
        assert f"<code>neuroevo {command}</code>" in cli
    assert (site / "repo" / "results" / "compare" / "HalfCheetah-v5" / "return_vs_env_steps.png").is_file()


def test_readme_links_exist():
    """The README is read on GitHub, outside the site: its relative links must name files of the repository."""
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text()):
        assert "://" in target or (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def _hooks():
    spec = importlib.util.spec_from_file_location("neuroevo_docs", ROOT / "docs" / "_hooks" / "neuroevo_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_task_card_setting_is_documented():
    missing = set(_hooks().undocumented_fields())
    assert not missing - UNDOCUMENTED, f"settings without a docstring below the field: {sorted(missing - UNDOCUMENTED)}"
    assert not UNDOCUMENTED - missing, f"documented now, drop them from UNDOCUMENTED: {sorted(UNDOCUMENTED - missing)}"


def test_results_links_point_at_the_sites_copy():
    rewrite = _hooks().rewrite_results_links
    page = "![plot](../../results/compare/x.png) [docs](../guides/cli.md) [web](https://example.org/results/a)"
    assert rewrite(page, "results/compare.md") == (
        "![plot](../repo/results/compare/x.png) [docs](../guides/cli.md) [web](https://example.org/results/a)")
    assert rewrite("[r](../results/a.txt#x)", "index.md") == "[r](repo/results/a.txt#x)"


# -- the examples ----------------------------------------------------------------------------------------------------
def test_every_block_runs_or_says_why_not(capsys):
    found = all_blocks()
    runnable = [b for b in found if b.lang in RUN]
    skips = Counter(b.skip for b in runnable if b.skip)
    for block in runnable:
        if block.skip is None and block.lang == "bash":
            for argv in commands(block.code):
                assert neuroevo_args(argv) is not None or argv[0] in ("python", ".venv/bin/python"), (
                    f"{block}: `{shlex.join(argv)}` cannot run in the tests: mark the block with a reason")
    unknown = sorted({b.lang or "(none)" for b in found} - {*RUN, "text", "toml"})
    assert not unknown, f"code blocks in languages the tests do not know: {unknown} (python, bash, text, toml)"
    with capsys.disabled():
        print(f"\ndocs examples: {len(runnable) - sum(skips.values())} blocks run, "
              + ", ".join(f"{n} skipped ({reason})" for reason, n in sorted(skips.items())))
    assert dict(skips) == EXPECTED_SKIPS


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.lang in RUN and b.skip], ids=str)
def test_skipped_blocks_still_parse(block):
    if block.lang == "python":
        compile(block.code, str(block), "exec", dont_inherit=True)
        return
    parser = build_parser()
    for argv in commands(block.code):
        args = neuroevo_args(argv)
        if args is None:
            script = next((a for a in argv if a.startswith("scripts/")), None)
            assert script is None or (ROOT / script).is_file(), f"{block}: no {script}"
            continue
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{block}: the CLI does not accept `{shlex.join(argv)}`")
        if parsed.command == "train" and parsed.resume is None:
            resolve_config(parsed.env, _train_overrides(parsed))  # every --set names a real setting


def _runnable_pages() -> list[Path]:
    return [page for page in PAGES if any(b.lang in RUN and not b.skip for b in blocks(page))]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory with the task cards at envs/, and the registries as they were afterwards."""
    (tmp_path / "envs").symlink_to(ROOT / "envs")
    monkeypatch.chdir(tmp_path)
    algorithms, envs = dict(ALGORITHMS), set(gym.registry)
    yield tmp_path
    ALGORITHMS.clear()
    ALGORITHMS.update(algorithms)
    for env_id in set(gym.registry) - envs:
        del gym.registry[env_id]


@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_of_a_page_run(page, sandbox, monkeypatch):
    module = types.ModuleType("docs_example")  # the page's namespace, a module as a script's would be
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in blocks(page):
        if block.skip or block.lang not in RUN:
            continue
        if block.lang == "python":
            exec(compile(block.code, str(block), "exec", dont_inherit=True), module.__dict__)
            continue
        for argv in commands(block.code):
            args = neuroevo_args(argv)
            if args is not None:
                assert main(capped(args)) == 0, f"{block}: `{shlex.join(argv)}` failed"
            else:
                argv = [str(ROOT / a) if a.startswith("scripts/") else a for a in argv]
                done = subprocess.run([sys.executable, *argv[1:]], cwd=sandbox, capture_output=True, text=True,
                                      timeout=120)
                assert done.returncode == 0, f"{block}: `{shlex.join(argv)}` failed:\n{done.stderr}"
