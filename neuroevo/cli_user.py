"""The command line's flags for a user's own env and policy network (``neuroevo train`` / ``eval``).

They only fill the config: ``--env-entry-point`` and ``--env-kwargs`` are ``env.entry_point`` / ``env.kwargs``,
``--policy-module`` and ``--policy-kwargs`` are ``policy.module`` / ``policy.kwargs`` (with ``policy.kind =
"module"``), so that the run directory records them and eval, resume, compare and Ray workers rebuild the same.
"""

from __future__ import annotations

import argparse
from typing import Any

from torch import nn

from neuroevo.config import parse_override
from neuroevo.policies.module import import_object


def add_user_code_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("your own env and network (recorded in the run's config)")
    group.add_argument(
        "--env-entry-point", metavar="MODULE:CLASS",
        help="a gymnasium env class nobody registered, e.g. my_package.envs:MyEnv; registered as --env "
        "(default: the class name, as MyEnv-v0)",
    )
    group.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE",
                       help="the env's constructor arguments (values read as TOML), e.g. --env-kwargs size=8")
    group.add_argument(
        "--policy-module", metavar="MODULE:CLASS",
        help="your nn.Module class, e.g. my_package.nets:MyNet: maps obs [B, obs_dim] to [B, act_dim]; gets "
        "obs_dim / act_dim if its constructor takes them (sets --policy module)",
    )
    group.add_argument("--policy-kwargs", nargs="+", metavar="KEY=VALUE",
                       help="its constructor's other arguments (values read as TOML), e.g. --policy-kwargs hidden=32")


def parse_kwargs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values as TOML, else strings); one-line error otherwise."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip() or "." in key:
            raise ValueError(f"{flag} takes KEY=VALUE pairs, got {item!r}")
        out.update(parse_override(item))
    return out


def user_code_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides the flags above ask for (nested plain data)."""
    out: dict[str, Any] = {}
    if args.env_entry_point is not None:
        out.setdefault("env", {})["entry_point"] = args.env_entry_point
    if args.env_kwargs is not None:
        out.setdefault("env", {})["kwargs"] = parse_kwargs(args.env_kwargs, "--env-kwargs")
    if args.policy_module is not None:
        out.setdefault("policy", {}).update(kind="module", module=args.policy_module)
    if args.policy_kwargs is not None:
        if args.policy_module is None:
            raise ValueError("--policy-kwargs goes with --policy-module")
        out["policy"]["kwargs"] = parse_kwargs(args.policy_kwargs, "--policy-kwargs")
    return out


def env_id_of(entry_point: str | None) -> str | None:
    """The env id a bare ``--env-entry-point`` registers: its class name, version 0 (``MyEnv-v0``)."""
    name = entry_point.rpartition(":")[2] if entry_point else ""
    return f"{name}-v0" if name else None


def build_module(path: str, kwargs: list[str] | None) -> nn.Module:
    """``Class(**kwargs)`` named by ``path`` ("package.module:Class"), for ``neuroevo eval --policy-module``."""
    module = import_object(path)(**parse_kwargs(kwargs, "--policy-kwargs"))
    if not isinstance(module, nn.Module):
        raise ValueError(f"--policy-module {path} gave a {type(module).__name__}, not a torch nn.Module")
    return module
