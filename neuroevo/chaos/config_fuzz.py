"""Attack 4: fuzzed configs. Every setting of ``[env]``, ``[run]``, ``[policy]`` and the optimizer in use, given
wrong types, out-of-range numbers, NaN, infinities, empty strings, lists and tables through ``--set``; unknown
keys and sections; unknown env ids; budgets of zero; broken task cards. Each case runs ``neuroevo train`` (in
this process, one generation at most) and must end in one of two ways: a one-line error (never a traceback), or
a run whose ``config.json`` holds the value given (never a setting silently dropped) or that warns the setting has
no effect."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

from neuroevo.chaos import Outcome, Settings
from neuroevo.chaos.files import cli, error_lines
from neuroevo.config import Config, parse_override

BASE = ("--algo", "es", "--generations", "1", "--set", "es.popsize=4", "--set", "run.eval_episodes=1",
        "--set", "env.max_steps=20", "--policy", "linear", "--quiet")
#: values every setting is given (TOML, as --set reads them)
VALUES = ("'x'", "''", "'  '", "nan", "inf", "-inf", "-1", "0", "1e300", "true", "[1]", "{a = 1}", "3.5", "-0.0",
          "2")
#: settings left out: they start Ray or compile (minutes, not a config check)
SKIP = {"run.workers", "run.compile", "run.ray_dashboard", "run.device"}


def _settings(section: str, obj: Any) -> list[str]:
    return [f"{section}.{f.name}" for f in dataclasses.fields(obj) if f"{section}.{f.name}" not in SKIP]


def cases(quick: bool) -> list[tuple[str, list[str]]]:
    """(description, neuroevo train arguments) for every case."""
    config = Config()
    keys = [*_settings("env", config.env), *_settings("run", config.run), *_settings("policy", config.policy),
            *_settings("es", config.es)]
    out = [(f"--set {key}={value}", ["--env", "CartPole-v1", "--set", f"{key}={value}"])
           for key in keys for value in VALUES]
    out += [(f"--set {text}", ["--env", "CartPole-v1", "--set", text]) for text in (
        "es.nope=1", "nope.x=1", "run.generation=3", "es=1", "=3", "es.=3", "noequals", "es.sigma", "es.sigma==1",
        "run.generations=0", "run.steps=0", "run.generations=-5", "ga.sigma=0.1", "ppo.steps=10",
        "policy.hidden=[0]", "policy.hidden=[8, -1]", "run.ray_address='127.0.0.1:1'", "run.shard_size=4",
        "env.num_threads=2")]
    out += [(f"--env {env}", ["--env", env]) for env in (
        "Nope-v0", "", "CartPole-v99", "../CartPole-v1", "missing.toml", "gymnasium:Nope-v0", "ALE/Pong-v5")]
    out += [(f"--popsize {p}", ["--env", "CartPole-v1", "--popsize", p]) for p in ("0", "-2", "3")]
    if quick:
        out = out[::40]
    return out


CARDS = {
    "empty card": "",
    "not TOML": "[env\nid = ",
    "a number for a section": "env = 3\n",
    "unknown section": '[env]\nid = "CartPole-v1"\n[nope]\nx = 1\n',
    "wrong type": '[env]\nid = "CartPole-v1"\n[run]\ngenerations = "ten"\n',
    "NaN": '[env]\nid = "CartPole-v1"\n[es]\nsigma = nan\n',
    "zero budget": '[env]\nid = "CartPole-v1"\n[run]\ngenerations = 0\n',
    "unknown env id": '[env]\nid = "Nope-v0"\n',
    "empty env id": '[env]\nid = ""\n',
    "binary garbage": "\x00\x01\x02",
}


def _expected(args: list[str]) -> dict[str, Any]:
    """The values the --set arguments ask for, as {section: {key: value}}."""
    wanted: dict[str, Any] = {}
    for flag, text in zip(args, args[1:], strict=False):
        if flag == "--set":
            try:
                for section, values in parse_override(text).items():
                    if isinstance(values, dict):
                        wanted.setdefault(section, {}).update(values)
            except ValueError:
                pass
    return wanted


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b or (isinstance(a, int | float) and isinstance(b, int | float) and float(a) == float(b))


def attack(settings: Settings) -> list[Outcome]:
    work = settings.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    outcome = Outcome("fuzzed --set values, env ids and task cards",
                      command="neuroevo train --env ID|CARD --set KEY=VALUE ... (neuroevo.chaos.config_fuzz)")
    all_cases = cases(settings.quick)
    cards = list(CARDS.items())[:: 4 if settings.quick else 1]
    for name, text in cards:
        card = work / f"{name.replace(' ', '_')}.toml"
        card.write_text(text)
        all_cases.append((f"card: {name}", ["--env", str(card)]))
    errors = ran = 0
    for i, (name, args) in enumerate(all_cases):
        out = work / f"run{i}"
        status, err = cli("train", *BASE, *args, "--out", str(out))
        lines = error_lines(err)
        warned = [line for line in err.splitlines() if "has no effect" in line]
        if status is None:
            outcome.check(False, f"{name}: a traceback ({err[:200]})")
        elif status == 2:
            errors += 1
            outcome.check(len(lines) == 1 and "error:" in lines[0], f"{name}: {len(lines)} error lines: {lines[:3]}")
        elif status == 0:
            ran += 1
            outcome.check(_kept(out, _expected(args), warned), f"{name}: ran, and a setting was dropped silently")
        else:
            outcome.check(False, f"{name}: exit status {status}: {lines[:2]}")
        shutil.rmtree(out, ignore_errors=True)
    outcome.details = {"cases": len(all_cases), "one-line errors": errors, "ran with the value or a warning": ran}
    return [outcome]


def _kept(out: Path, wanted: dict[str, Any], warned: list[str]) -> bool:
    """Every setting asked for is in the run's config.json, or was warned about."""
    import json

    config = json.loads((out / "config.json").read_text())
    for section, values in wanted.items():
        for key, value in values.items():
            if any(f"{section}.{key}" in line for line in warned):
                continue
            if section not in config or key not in config[section] or not _same(config[section][key], value):
                return False
    return True



