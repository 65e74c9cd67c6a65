"""MkDocs hooks of neuroevo's docs site (``hooks:`` in mkdocs.yml), and the generators behind them.

What the site shows that is not written in docs/ is generated here from the code, so it cannot drift:

- ``<!-- neuroevo:task-card-fields -->``: every section of a task card, from the config dataclasses (``EnvConfig``,
  ``PolicyConfig``, ``RunConfig``, ``PPOConfig`` and the config of every optimizer in ``ALGORITHMS``), with each
  field's type, default and attribute docstring: a newly registered optimizer documents itself.
- ``<!-- neuroevo:task-card-list -->``: the shipped task cards (``envs/*.toml``) in a table.
- ``<!-- neuroevo:card NAME -->``: a shipped card's TOML, verbatim.
- ``<!-- neuroevo:cli -->``: the ``--help`` of every command and subcommand, from ``neuroevo.cli.build_parser()``.

And two adjustments of the pages:

- Links from a page to the repository's ``results/`` folder (``../results/...`` relative to the page, the links
  that work on GitHub) point at copies of those files that :func:`on_files` puts in the site under
  ``repo/results/``, so plots and reports show on both.
- Sphinx roles in docstrings (``:class:`~neuroevo.evaluator.Evaluator```) render as code (``Evaluator``).

``tests/test_docs.py`` imports this module (by path) to check the generated reference too.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: where the repository's results/ folder is copied in the site
RESULTS_IN_SITE = "repo/results"
DIRECTIVE = re.compile(r"^<!-- neuroevo:(?P<name>[a-z-]+)(?: (?P<arg>[^ ]+))? -->$", re.MULTILINE)
HELP_WIDTH = 100


# -- the task-card reference ----------------------------------------------------------------------------------
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass's fields (the string literal right below a field), its bases'
    included; a subclass's docstring of a field wins over its base's. Whitespace is collapsed."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass.__module__ == "builtins":
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        statements = body.body
        for node, after in zip(statements, [*statements[1:], None], strict=True):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(
                    after.value.value, str):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def config_sections() -> list[tuple[str, type, str]]:
    """Every section of a task card, in the order of ``Config``: (name, dataclass, one-line summary)."""
    from neuroevo.algorithms import ALGORITHMS
    from neuroevo.config import Config

    sections = []
    for f in dataclasses.fields(Config):
        if f.name == "algorithms":
            continue
        cls = type(getattr(Config(), f.name))
        sections.append((f.name, cls, _summary(f.name)))
    for name, optimizer in ALGORITHMS.items():
        summary = (optimizer.__doc__ or "").strip().split("\n\n")[0]
        sections.append((name, optimizer.config_class, " ".join(summary.split())))
    return sections


def _summary(section: str) -> str:
    return {
        "env": "the task: which env, on which backend, how many episodes make a member's fitness, the threshold",
        "policy": "the policy network the population evolves (a `Trainer(policy=...)` of your own replaces it)",
        "run": "the run: optimizer, seed, device, budget, evaluation of the solution, checkpoints, Ray workers",
        "ppo": "the PPO baseline of `neuroevo compare`: Stable-Baselines3's settings, as the RL Zoo tunes them; "
        "fields without a description here are SB3's own parameters of the same name",
        "sac": "the SAC baseline of `neuroevo compare`: Stable-Baselines3's settings, as the RL Zoo tunes them "
        "(its MuJoCo defaults in the locomotion cards); fields without a description here are SB3's own parameters",
        "td3": "the TD3 baseline of `neuroevo compare`: Stable-Baselines3's settings, as the RL Zoo tunes them "
        "(its MuJoCo defaults in the locomotion cards); fields without a description here are SB3's own parameters",
        "log": "where the metrics go: output formats, Weights & Biases tracking, videos during training "
        "([Logging, tracking and tuning](../guides/logging-and-tuning.md))",
    }.get(section, "")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _toml_value(value: Any) -> str:
    if value is None:
        return "none (unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def undocumented_fields() -> list[str]:
    """``section.field`` of every task-card setting without an attribute docstring."""
    missing = []
    for name, cls, _ in config_sections():
        docs = field_docs(cls)
        missing += [f"{name}.{f.name}" for f in dataclasses.fields(cls) if f.name not in docs]
    return missing


def task_card_fields() -> str:
    """Markdown: one heading per task-card section, one entry per setting (type, default, description)."""
    out = []
    for name, cls, summary in config_sections():
        out.append(f"### `[{name}]`\n")
        source = f"`{cls.__module__}.{cls.__qualname__}`"
        out.append(f"{summary[0].upper() + summary[1:] if summary else ''} (from {source})\n".lstrip())
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            kind = f"`{f.type}`" if isinstance(f.type, str) else f"`{getattr(f.type, '__name__', f.type)}`"
            doc = docs.get(f.name, "*(no description in the source yet)*")
            out.append(f"- **`{name}.{f.name}`** ({kind}, default `{_toml_value(_default(f))}`): {doc}")
        renamed = getattr(cls, "renamed", {})
        if renamed:
            old = ", ".join(f"`{old}` (now `{new}`)" for old, new in renamed.items())
            out.append(f"- Old names still read, with a deprecation warning: {old}.")
        out.append("")
    return "\n".join(out)


def task_card_list() -> str:
    """Markdown table of the shipped cards: env, threshold, default optimizer, policy, budget, sections."""
    from neuroevo.config import card_names, find_card, load_card, resolve_config

    rows = ["| card | threshold | default `--algo` | policy | budget without flags | sections |",
            "|---|---|---|---|---|---|"]
    for card in card_names():
        path = find_card(card)
        assert path is not None
        data, config = load_card(path), resolve_config(card)
        policy = config.policy.kind + (f" {tuple(config.policy.hidden)}" if config.policy.kind == "mlp" else "")
        if config.policy.kind == "cnn":
            policy += f" {config.policy.arch}, {config.policy.padding}"
        threshold = "-" if config.env.threshold is None else f"{config.env.threshold:g}"
        budget = ", ".join(f"{key} {getattr(config.run, key):g}" for key in ("generations", "steps", "target")
                           if getattr(config.run, key) is not None)
        rows.append(f"| `{card}` | {threshold} | `{config.run.algo}` | {policy} | {budget} | "
                    f"{', '.join(f'`[{s}]`' for s in data)} |")
    return "\n".join(rows) + "\n"


def card_toml(name: str) -> str:
    from neuroevo.config import find_card

    path = find_card(name)
    if path is None:
        raise ValueError(f"no shipped task card {name!r}")
    text = path.read_text()
    tomllib.loads(text)
    return f"```toml\n{text.rstrip()}\n```\n"


# -- the command-line reference ----------------------------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((name, sub))
    return out


def cli_reference() -> str:
    """Markdown: the ``--help`` of ``neuroevo`` and of each (sub)command, as the CLI prints it."""
    from neuroevo.cli import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)  # argparse wraps to $COLUMNS
    try:
        parser = build_parser()
        out = [f"## `neuroevo`\n\n```text\n{parser.format_help().rstrip()}\n```\n"]
        todo = [("neuroevo " + name, sub) for name, sub in _subcommands(parser)]
        while todo:
            command, sub = todo.pop(0)
            out.append(f"## `{command}`\n\n```text\n{sub.format_help().rstrip()}\n```\n")
            todo[:0] = [(f"{command} {name}", s) for name, s in _subcommands(sub)]
        return "\n".join(out)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


GENERATORS = {
    "task-card-fields": lambda arg: task_card_fields(),
    "task-card-list": lambda arg: task_card_list(),
    "card": card_toml,
    "cli": lambda arg: cli_reference(),
    "search-spaces": lambda arg: _search_spaces(),
}


def _search_spaces() -> str:
    from neuroevo.tune import search_space_table

    return search_space_table()


def expand(markdown: str) -> str:
    """``markdown`` with every ``<!-- neuroevo:NAME [ARG] -->`` line replaced by what it generates."""

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise ValueError(f"unknown docs directive neuroevo:{name}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name](match["arg"])

    return DIRECTIVE.sub(replace, markdown)


# -- links into results/ ------------------------------------------------------------------------------------------
LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?(?:\s+\"[^\"]*\")?\))")


def rewrite_results_links(markdown: str, src_uri: str) -> str:
    """Links of the page at ``src_uri`` (relative to docs/) into the repository's results/ folder point at the
    site's copy of it (:data:`RESULTS_IN_SITE`)."""
    page_dir = os.path.dirname(src_uri)

    def replace(match: re.Match) -> str:
        target = match[2]
        if "://" in target or target.startswith(("/", "mailto:")):
            return match[0]
        resolved = os.path.normpath(os.path.join(page_dir, target)).replace(os.sep, "/")
        if not resolved.startswith("../results/"):
            return match[0]
        in_site = RESULTS_IN_SITE + resolved[len("../results"):]
        return match[1] + os.path.relpath(in_site, page_dir or ".").replace(os.sep, "/") + match[3]

    return LINK.sub(replace, markdown)


SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([^<]*)</code>")


def _sphinx_role_as_code(match: re.Match) -> str:
    """``:class:`~a.b.C``` -> ``C``, ``:func:`a.b.f``` -> ``a.b.f`` (Sphinx's meaning of ``~``), as code."""
    return f"<code>{match[2].rsplit('.', 1)[-1] if match[1] else match[2]}</code>"


# -- the hooks ------------------------------------------------------------------------------------------------------
def on_files(files, config):
    """Copy the repository's results/ folder into the site (reports become pages outside the nav)."""
    from mkdocs.structure.files import File, InclusionLevel

    results = ROOT / "results"
    for path in sorted(results.rglob("*")):
        if not path.is_file():
            continue
        uri = f"{RESULTS_IN_SITE}/{path.relative_to(results).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(path), inclusion=InclusionLevel.NOT_IN_NAV))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(RESULTS_IN_SITE):
        return markdown
    return rewrite_results_links(expand(markdown), page.file.src_uri)


def on_page_content(html, page, config, files):
    return SPHINX_ROLE.sub(_sphinx_role_as_code, html)


if __name__ == "__main__":  # print the generated reference, e.g. to read it without building the site
    print(task_card_list() + "\n" + task_card_fields() + "\n" + cli_reference())
