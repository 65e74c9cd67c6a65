"""Checkpoints and policy files: plain tensors and numbers, written atomically, read with
``torch.load(weights_only=True)``.

A run directory holds ``checkpoints/last.pt`` (everything needed to resume) and ``best_policy.pt``
(one member, ready to deploy with :func:`load_policy`).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from neuroevo.algorithms.population import tensor_digest
from neuroevo.faults import pause_point
from neuroevo.policies import DeployedPolicy, ModulePolicy, ObsNormalizer, Policy, policy_from_spec

POLICY_FORMAT = "neuroevo-policy/1"
CHECKPOINT_FORMAT = "neuroevo-checkpoint/1"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it to ``path``: a kill mid-write
    leaves the previous file intact (what every file a run keeps is written through). The file gets the
    permissions of any new file (the umask's), and an ``OSError`` (a full disk) names ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it private (0600); results are shared like any file
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        pause_point(path)  # tests only: a harness may kill the writer here (neuroevo.faults)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.errno is None or str(path) in str(err):
            raise
        raise OSError(err.errno, f"could not write {path}: {err.strerror}") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: how the temporary files of :func:`atomic_write` end (``.<name>.<random>.tmp``)
TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files that writers killed inside :func:`atomic_write` left in ``directory`` and its
    subdirectories (``.<name>.<random>.tmp``; the files they were to replace are intact). Returns them."""
    stale = [p for p in Path(directory).rglob(f".*{TEMPORARY_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """``data`` as indented JSON at ``path``, atomically (:func:`atomic_write`)."""
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


#: what every file of each format holds (a file without one of them is refused by name)
REQUIRED_FIELDS = {
    CHECKPOINT_FORMAT: ("config", "generation", "env_steps", "episodes", "eval_env_steps", "wall_time",
                        "best_eval_return", "last_eval_return", "solved", "optimizer", "normalizer", "solution"),
    POLICY_FORMAT: ("policy", "params", "action_space", "normalizer", "env_id"),
}


def load_file(path: str | Path, expected_format: str | None = None) -> dict[str, Any]:
    """Read a neuroevo file with ``weights_only=True`` (nothing in it is executed); a missing, empty, truncated,
    corrupt, foreign, hostile or incomplete file raises a one-line ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a neuroevo checkpoint or policy file")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not the user's concern
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower():  # a class or function to import and call: refused
            raise ValueError(
                f"{path}: refused: it holds Python objects, not only tensors and numbers (loading them could run "
                "code); a neuroevo file never does"
            ) from None
        raise ValueError(
            f"{path}: not a readable neuroevo file: truncated or corrupted (neither a torch archive nor a valid pickle)"
        ) from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise ValueError(
            f"{path}: not a readable neuroevo file: truncated or corrupted ({first_line(err)})"
        ) from None
    if not isinstance(data, dict) or "format" not in data:
        raise ValueError(f"{path}: not a neuroevo checkpoint or policy file")
    if expected_format is not None and data["format"] != expected_format:
        raise ValueError(f"{path}: holds {data['format']!r}, expected {expected_format!r}")
    if expected_format is not None:
        require_fields(data, REQUIRED_FIELDS.get(expected_format, ()), path)
    return data


def require_fields(data: dict[str, Any], names: tuple[str, ...], path: str | Path) -> None:
    """A one-line ``ValueError`` naming the fields of ``names`` that ``data`` (read from ``path``) lacks."""
    missing = [name for name in names if name not in data]
    if missing:
        raise ValueError(f"{path}: incomplete {data['format']} file: no {', '.join(missing)}")


def first_line(err: BaseException, limit: int = 120, typed: bool = True) -> str:
    """The first line of ``err``'s message, at most ``limit`` characters, after its type name if ``typed`` (and
    always for an exception with an empty or bare message)."""
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror if err.filename is None else f"{err.filename}: {err.strerror}"
    else:
        text = str(err)
    if typed or not text.strip() or isinstance(err, (KeyError, IndexError)):
        text = f"{type(err).__name__}: {text}"
    text = text.split("\n")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- action spaces as plain data ------------------------------------------------------------------


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """An action space as plain data (``weights_only``-safe): Discrete (n, start) or Box (bounds, dtype)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "box", "low": torch.as_tensor(space.low), "high": torch.as_tensor(space.high),
                "dtype": str(np.dtype(space.dtype))}
    raise ValueError(f"cannot store action space {space}")


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """The space :func:`space_to_dict` stored (a Box saved before its dtype was stored is float32)."""
    if data["type"] == "discrete":
        return gym.spaces.Discrete(data["n"], start=data["start"])
    low, high = data["low"].numpy(), data["high"].numpy()
    return gym.spaces.Box(low=low, high=high, dtype=np.dtype(data.get("dtype", "float32")))


# -- policy files ---------------------------------------------------------------------------------


def policy_record(
    policy: Policy,
    params: torch.Tensor,
    action_space: gym.Space,
    normalizer: ObsNormalizer | None,
    env_id: str,
    env: dict[str, Any] | None = None,
    **info: Any,
) -> dict[str, Any]:
    """One member as plain data: what ``best_policy.pt`` holds and :func:`load_policy` reads. ``env``: how
    to rebuild a user's env beside its id, ``{"entry_point", "kwargs", "max_steps"}`` (the run config's ``env``
    fields)."""
    return {
        "format": POLICY_FORMAT,
        "policy": policy.spec(),
        "params": params.detach().cpu().clone(),
        "action_space": space_to_dict(action_space),
        "normalizer": normalizer.state_dict() if normalizer is not None else None,
        "env_id": env_id,
        "env": dict(env or {}),
        "info": info,
    }


def save_policy(
    path: str | Path,
    policy: Policy,
    params: torch.Tensor,
    action_space: gym.Space,
    normalizer: ObsNormalizer | None = None,
    env_id: str = "",
    *,
    env: dict[str, Any] | None = None,
    **info: Any,
) -> Path:
    """Save one member (params [D] of ``policy``, e.g. an optimizer's ``center``) as a policy file, atomically:
    what the trainer writes as ``best_policy.pt``, so that :func:`load_policy`, ``neuroevo eval PATH`` and
    :func:`~neuroevo.playback.evaluate_checkpoint` read it. ``normalizer``: the observation statistics the
    member was evaluated with (None: raw observations); ``env_id``: the env it plays (``neuroevo eval``'s
    default); ``info``: any plain numbers to keep beside it. Returns ``path``."""
    policy.check_flat(params)
    atomic_save(policy_record(policy, params, action_space, normalizer, env_id, env, **info), path)
    return Path(path)


def read_policy(
    path: str | Path, module: nn.Module | None = None
) -> tuple[Policy, torch.Tensor, gym.Space, ObsNormalizer | None, dict[str, Any]]:
    """(policy, params [D], action_space, normalizer or None, record) from a policy file, a
    checkpoint, or a run directory (its ``best_policy.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "best_policy.pt"
    record = load_file(path)
    if record["format"] == CHECKPOINT_FORMAT:
        require_fields(record, ("solution",), path)
        record = record["solution"]
        if not isinstance(record, dict):
            raise ValueError(f"{path}: malformed checkpoint: its solution is not a policy record")
        if record.get("params") is None and "genome" in record:
            record = _named_solution(path, record)
    elif record["format"] != POLICY_FORMAT:
        raise ValueError(f"{path}: holds {record['format']!r}, not a policy or checkpoint")
    require_fields({"format": POLICY_FORMAT, **record}, REQUIRED_FIELDS[POLICY_FORMAT], path)
    return (*unpack_policy_record(record, module, where=str(path)), record)


def _named_solution(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The policy record of a checkpoint whose best policy is named by its genome (the GA's compact
    checkpoints): the run's best_policy.pt, which the trainer wrote first, if it holds those very params."""
    if record.get("genome") is None:
        raise ValueError(f"{path}: its run has evaluated no policy yet (the checkpoint names its starting point, "
                         "which a resume builds again)")
    best = path.parent.parent / "best_policy.pt"
    if best.is_file():
        saved = load_file(best, POLICY_FORMAT)
        if isinstance(saved.get("params"), torch.Tensor) and tensor_digest(saved["params"]) == record["params_digest"]:
            return saved
    raise ValueError(f"{path}: names its best policy by its genome, and {best} is missing or a later policy: "
                     f"evaluate the run directory, or resume the run (neuroevo train --resume), which rebuilds it")


def unpack_policy_record(
    record: dict[str, Any], module: nn.Module | None = None, where: str = "policy"
) -> tuple[Policy, torch.Tensor, gym.Space, ObsNormalizer | None]:
    """(policy, params [D], action_space, normalizer or None) from a :func:`policy_record` (a malformed one is a
    one-line ``ValueError`` naming ``where``)."""
    try:
        return _unpack_policy_record(record, module, where)
    except ValueError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
        raise ValueError(f"{where}: malformed policy record ({first_line(err)})") from None


def _unpack_policy_record(
    record: dict[str, Any], module: nn.Module | None, where: str
) -> tuple[Policy, torch.Tensor, gym.Space, ObsNormalizer | None]:
    spec = record["policy"]
    policy: Policy
    if spec.get("kind") == "module" and module is not None:
        policy = ModulePolicy(module, spec["obs_dim"])
    else:  # a module named by import path is rebuilt from it; one passed as an object needs ``module``
        try:
            policy = policy_from_spec(spec)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    params = record["params"]
    if not isinstance(params, torch.Tensor) or not params.is_floating_point():
        raise ValueError(f"{where}: the stored parameters are not a float tensor")
    if params.shape != (policy.num_params,):
        raise ValueError(
            f"{where}: {params.numel()} parameters stored, but the {spec.get('kind')} policy needs {policy.num_params}"
        )
    normalizer = None
    if record["normalizer"] is not None:
        normalizer = ObsNormalizer(policy.obs_dim)
        normalizer.load_state_dict(record["normalizer"])
    return policy, params, space_from_dict(record["action_space"]), normalizer


def load_policy(
    path: str | Path, module: nn.Module | None = None, device: torch.device | str | None = None
) -> DeployedPolicy:
    """The deployable ``nn.Module`` stored at ``path``: observations [B, obs_dim] -> env actions
    (indices for ``Discrete``, values inside the ``Box``), observation normalizer included.

    ``path`` is a ``best_policy.pt``, a checkpoint, or a run directory. A policy built on a user
    module needs that module's architecture: ``load_policy(path, module=MyNet())``.
    """
    policy, params, action_space, normalizer, _ = read_policy(path, module)
    deployed = DeployedPolicy.build(policy, params, action_space, normalizer)
    return deployed.to(device) if device is not None else deployed
