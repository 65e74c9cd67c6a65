"""Users' own gymnasium envs, named the way gymnasium names them.

- ``"my_package:MyEnv-v0"``: gymnasium's own meaning: import ``my_package`` (which registers ``MyEnv-v0``),
  then make ``MyEnv-v0``.
- an entry point ``"my_package.envs:MyEnv"`` for a class (or any callable returning a ``gymnasium.Env``) that
  nobody registered: it is registered under the run's env id on first use, in every process that makes the env
  (a Ray worker too), so the run's config is all it takes to rebuild it.

:func:`check_user_env` runs gymnasium's own checker (``gymnasium.utils.env_checker.check_env``) on one copy of
such an env and shows each of its warnings once.
"""

from __future__ import annotations

import importlib
import re
import warnings
from typing import Any

import gymnasium as gym


def _import(module: str, what: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"{what}: cannot import {module!r} ({err}); is it on PYTHONPATH?") from None


def resolve_env_id(env_id: str, entry_point: str | None = None) -> str:
    """The registered gymnasium id that ``env_id`` names, after making sure it is registered: ``"module:Id"``
    imports ``module`` and gives ``"Id"``; with ``entry_point`` (``"module.path:Class"``), ``env_id`` is
    registered with it unless it already is. Other ids are returned as they are."""
    if entry_point is not None:
        if ":" not in entry_point:
            raise ValueError(f"env entry point {entry_point!r} must look like 'package.module:ClassName'")
        module, _, attr = entry_point.partition(":")
        _import(module, f"env entry point {entry_point!r}")
        if not hasattr(importlib.import_module(module), attr):
            raise ValueError(f"env entry point {entry_point!r}: {module} has no attribute {attr!r}")
        spec = gym.registry.get(env_id)
        if spec is None:
            try:
                gym.register(env_id, entry_point=entry_point)
            except gym.error.Error as err:
                raise ValueError(f"cannot register env {env_id!r} for {entry_point}: {err}".split("\n")[0]) from None
        elif _entry_point_name(spec.entry_point) != entry_point:
            raise ValueError(
                f"env id {env_id!r} is already registered for {_entry_point_name(spec.entry_point)}, "
                f"not {entry_point}: pick another --env id"
            )
        return env_id
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        _import(module, f"env {env_id!r}")
        if name not in gym.registry:
            raise ValueError(f"env {env_id!r}: importing {module} did not register {name!r} with gymnasium")
        return name
    return env_id


def _entry_point_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


def is_user_env(env_id: str, entry_point: str | None = None) -> bool:
    """Whether ``env_id`` is a user's env: named with a module or an entry point, or registered from outside
    gymnasium (its own envs are checked by gymnasium's tests, not at every run)."""
    if entry_point is not None or ":" in env_id:
        return True
    spec = gym.registry.get(env_id)
    if spec is None:
        return False
    return not _entry_point_name(spec.entry_point).startswith("gymnasium.")


def check_user_env(env_id: str, entry_point: str | None = None, **kwargs: Any) -> list[str]:
    """Run gymnasium's env checker on one unwrapped copy of the env and show each warning it gives once (as a
    ``UserWarning`` naming the env). Returns the warnings' texts; a failed check raises a one-line
    ``ValueError`` naming the env."""
    name = resolve_env_id(env_id, entry_point)
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(name, disable_env_checker=True, **kwargs)
        try:
            check_env(env.unwrapped, skip_render_check=True)
        except Exception as err:  # gymnasium raises AssertionError, TypeError, ... for a broken env
            text = str(err).split("\n")[0] or type(err).__name__
            raise ValueError(f"{env_id}: gymnasium's env checker failed: {text}") from None
        finally:
            env.close()
    texts: list[str] = []
    for warning in caught:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(warning.message)).removeprefix("WARN: ").strip()
        if text not in texts:
            texts.append(text)
    for text in texts:
        warnings.warn(f"{env_id}: gymnasium's env checker: {text}", UserWarning, stacklevel=2)
    return texts
