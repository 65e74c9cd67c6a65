"""A run's configuration: one dataclass tree, filled by a TOML task card, overridden by the CLI.

Task cards are the TOML files of the top-level ``envs/`` folder (shipped in the wheel as
``neuroevo.tasks``). A card has the sections of :class:`Config`: ``[env]``, ``[policy]``, ``[run]``,
one per registered optimizer (``[es]``, ``[ga]``, ``[ars]``, ``[pso]``, ...: the sections come from
``neuroevo.algorithms.ALGORITHMS``, each the optimizer's own config dataclass) holding the hyperparameters that
solve it, and ``[ppo]``, ``[sac]``, ``[td3]``: the RL Zoo's settings for the baselines (``neuroevo.baselines``).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import tomllib
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroevo.algorithms import ALGORITHMS
from neuroevo.baselines import PPOConfig, SACConfig, TD3Config
from neuroevo.logger import LogConfig
from neuroevo.policies import PolicyConfig


@dataclass
class EnvConfig:
    id: str = "CartPole-v1"
    """env id (torch-native or registered with gymnasium)"""
    backend: str = "auto"
    """'torch', 'mujoco', 'warp', 'gymnasium', or 'auto' (torch-native where there is one, then mujoco, else
    gymnasium; never warp)"""
    episodes: int = 1
    """episodes per member per generation; the member's fitness is their mean return"""
    max_steps: int | None = None
    """cap on episode length (default: the env's own time limit)"""
    threshold: float | None = None
    """return at which the task counts as solved (the card's reference number)"""
    reward_shift: float = 0.0
    """subtracted from every step's reward in training episodes, not in evaluations: ARS's removal of
    the alive bonus (Mania et al. 2018), so that standing still is not rewarded"""
    num_threads: int | None = None
    """physics threads of the mujoco backend (default: the cores available)"""
    entry_point: str | None = None
    """an env class of your own that nobody registered, 'package.module:ClassName': registered with gymnasium
    as ``id`` wherever the run makes its envs (``--env-entry-point``). ``id`` may also read 'package:EnvId',
    gymnasium's meaning: import package (which registers EnvId), then make EnvId"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """the env's constructor arguments (``gymnasium.make``'s keyword arguments; ``--env-kwargs key=value``)"""

    def make_args(self) -> dict[str, Any]:
        """The keyword arguments of ``make_env`` / ``EnvFactory`` that name this env: entry point and kwargs."""
        return {"entry_point": self.entry_point, **self.kwargs}


@dataclass
class RunConfig:
    algo: str = "es"
    """a key of ``neuroevo.algorithms.ALGORITHMS``: 'es', 'ga', 'ars', 'pso', 'de', 'sa', 'hill_climbing', ..."""
    seed: int = 0
    """the run's seed: the initial parameters, every optimizer draw (``derive_seed(seed, generation)``) and
    every episode seed follow from it, so the same seed gives the same run, resumed or on any number of
    workers"""
    device: str | None = None
    """torch device; default the GPU where there is one, else the CPU"""
    generations: int | None = None
    """stop after this many generations"""
    steps: int | None = None
    """stop once this many training env steps are taken"""
    target: float | None = None
    """stop once the evaluated solution (ES/ARS center, GA elite) reaches this mean return"""
    eval_episodes: int = 20
    """episodes of each evaluation of the solution"""
    eval_every: int = 1
    """evaluate the solution every this many generations"""
    checkpoint_every: int = 1
    """write a checkpoint every this many generations (and at the end); raise it where the optimizer
    state is large (a GA's population is P x D floats)"""
    compile: bool = False
    """run the rollout step through torch.compile: fewer kernel launches (GPU) and less per-op overhead
    (small CPU batches); the first generation pays seconds of compilation"""
    workers: int = 0
    """Ray worker actors that evaluate the population (0: evaluate in this process); the trajectory is
    the same for any number (docs: guides/scale-out.md)"""
    ray_address: str | None = None
    """with workers: the Ray cluster to join, 'auto' (the one started on this machine) or 'HOST:PORT';
    None starts a local Ray instance bound to 127.0.0.1"""
    ray_dashboard: bool = False
    """start the local Ray instance's dashboard (on 127.0.0.1)"""
    shard_size: int | None = None
    """members evaluated together: per shard of distributed evaluation (default ceil(popsize / 32): set by the
    population, not by the number of workers, so that results do not depend on it); without workers, members
    evaluated at a time, their rows built when their turn comes (default: the whole population at once; set it
    when [popsize, D] parameters do not fit in memory). Fitness values do not depend on it."""


def _algorithm_sections() -> dict[str, Any]:
    return {name: cls.config_class() for name, cls in ALGORITHMS.items()}


@dataclass
class Config:
    """The whole run. ``algorithms`` holds one section per registered optimizer, named as in the registry and
    read as attributes (``config.es``, ``config.ga``, ...); in task cards, checkpoints and :meth:`to_dict` they
    are top-level sections like the others."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    run: RunConfig = field(default_factory=RunConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """the PPO baseline of ``neuroevo compare`` (Stable-Baselines3, RL Zoo settings)"""
    sac: SACConfig = field(default_factory=SACConfig)
    """the SAC baseline of ``neuroevo compare`` (Stable-Baselines3, RL Zoo settings)"""
    td3: TD3Config = field(default_factory=TD3Config)
    """the TD3 baseline of ``neuroevo compare`` (Stable-Baselines3, RL Zoo settings)"""
    log: LogConfig = field(default_factory=LogConfig)
    """where the metrics go: output formats, W&B tracking, videos (``neuroevo.logger``)"""
    algorithms: dict[str, Any] = field(default_factory=_algorithm_sections)
    """optimizer name -> its config dataclass, for every optimizer registered when the config was made"""

    def __getattr__(self, name: str) -> Any:
        algorithms = self.__dict__.get("algorithms")
        if algorithms is not None and name in algorithms:
            return algorithms[name]
        raise AttributeError(f"{type(self).__name__} has no section {name!r}")

    @property
    def algo_config(self):
        """The config of the selected algorithm: the section named as ``run.algo`` (``self.es``, ...)."""
        return self.algorithms[self.run.algo]

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` for a value no run can use."""
        if self.run.algo not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.run.algo!r}; choose one of {', '.join(ALGORITHMS)}")
        popsize = self.algo_config.popsize  # None: the optimizer's rule from the parameter count (CMA-ES, ...)
        if popsize is not None and popsize <= 0:
            raise ValueError(f"popsize must be positive, got {popsize}")
        for name in ("generations", "steps"):
            value = getattr(self.run, name)
            if value is not None and value <= 0:
                raise ValueError(f"run.{name} must be positive, got {value}")
        for name in ("episodes", "max_steps", "num_threads"):
            value = getattr(self.env, name)
            if value is not None and value <= 0:
                raise ValueError(f"env.{name} must be positive, got {value}")
        if self.policy.kind == "mlp" and any(units <= 0 for units in self.policy.hidden):
            raise ValueError(f"policy.hidden sizes must be positive, got {self.policy.hidden}")
        if self.run.eval_episodes <= 0 or self.run.eval_every <= 0 or self.run.checkpoint_every <= 0:
            raise ValueError("run.eval_episodes, run.eval_every and run.checkpoint_every must be positive")
        if self.run.generations is None and self.run.steps is None and self.run.target is None:
            raise ValueError("no budget: set run.generations, run.steps or run.target")
        if self.run.workers < 0 or (self.run.shard_size is not None and self.run.shard_size <= 0):
            raise ValueError("run.workers must be 0 or more and run.shard_size positive")
        self.log.validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain data, one top-level section per part and per optimizer (as in a task card)."""
        data = {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name != "algorithms"}
        data.update({name: dataclasses.asdict(section) for name, section in self.algorithms.items()})
        return data


# -------------------------------------------------------------------------------------------------
# Building the tree from plain data (task cards, checkpoints, --set overrides)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a plain TOML/JSON value against a field's annotation (``int | None``, ``list[int]`` ...)."""
    args = typing.get_args(annotation)
    if value is None:
        if type(None) in args:
            return None
        raise ValueError(f"{where} may not be empty")
    if args and type(None) in args:
        annotation = next(a for a in args if a is not type(None))
    origin = typing.get_origin(annotation)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a table (key = value), got {value!r}")
        return dict(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, typing.get_args(annotation)[0], where) for v in value]
    if annotation is float:
        return _number(value, where)
    if annotation in (int, str, bool) and type(value) is not annotation:
        raise ValueError(f"{where} must be {annotation.__name__}, got {value!r}")
    if annotation is str and not value.strip():
        raise ValueError(f"{where} may not be an empty string")
    return value


def _number(value: Any, where: str) -> float:
    """A float setting's value: a finite int or float (not a bool), as a float."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _fill(obj: Any, data: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    sections = obj.algorithms if isinstance(obj, Config) else {}
    names = {f.name for f in dataclasses.fields(obj)} - {"algorithms"} | set(sections)
    renamed = getattr(obj, "renamed", {})  # old name -> new name, still read (with a warning)
    for key, value in data.items():
        if key in renamed:
            warnings.warn(f"setting {where}{key} is now {where}{renamed[key]}", DeprecationWarning, stacklevel=4)
            key = renamed[key]
        if key not in names:
            raise ValueError(f"unknown setting {where}{key}; known: {', '.join(sorted(names))}")
        if key in sections:
            if not isinstance(value, dict):
                raise ValueError(f"{where}{key} must be a table of settings")
            _fill(sections[key], value, f"{key}.")
        elif dataclasses.is_dataclass(getattr(obj, key)):
            if not isinstance(value, dict):
                raise ValueError(f"{where}{key} must be a table of settings")
            _fill(getattr(obj, key), value, f"{where}{key}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{where}{key}"))


def config_from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """A :class:`Config` from nested plain data (unknown keys and wrong types raise ``ValueError``)."""
    config = config_from_dict(base.to_dict()) if base is not None else Config()
    _fill(config, data, "")
    return config


def unused_settings(overrides: dict[str, Any], config: Config) -> list[str]:
    """The settings of ``overrides`` (e.g. the CLI's ``--set``) that ``neuroevo train`` with ``config`` would not
    read: another optimizer's section, the PPO baseline's, an MLP's layout for a linear policy. Each is a
    ``section.key`` with the reason; the CLI warns about them instead of ignoring them silently."""
    unused = []
    for section, values in overrides.items():
        keys = sorted(values) if isinstance(values, dict) else []
        if section in ALGORITHMS and section != config.run.algo:
            unused += [f"{section}.{key} (the run uses {config.run.algo})" for key in keys]
        elif section == "ppo":
            unused += [f"ppo.{key} (the PPO baseline's; read by neuroevo compare only)" for key in keys]
        elif section == "policy" and config.policy.kind != "mlp":
            unused += [f"policy.{key} (an MLP setting; the policy is {config.policy.kind})"
                       for key in keys if key in ("hidden", "activation")]
        elif section == "run" and not config.run.workers:
            unused += [f"run.{key} (a Ray setting; run.workers is 0)"
                       for key in keys if key in ("ray_address", "ray_dashboard", "shard_size")]
        elif section == "env" and "num_threads" in keys:
            from neuroevo.envs import resolve_backend

            if resolve_backend(config.env.id, config.env.backend) != "mujoco":
                unused.append("env.num_threads (physics threads of the mujoco backend; this run's is not)")
    return unused


def parse_override(text: str) -> dict[str, Any]:
    """``"es.sigma=0.05"`` -> ``{"es": {"sigma": 0.05}}`` (the value is parsed as TOML, else a string)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


# -------------------------------------------------------------------------------------------------
# Task cards


def card_names() -> list[str]:
    """The task cards shipped with neuroevo, by path without ``.toml`` (= env id, e.g. ``ALE/Frostbite-v5``)."""
    root = importlib.resources.files("neuroevo.tasks")
    names = [p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml")]
    for folder in root.iterdir():  # namespaced ids: ALE/<Game>-v5 in a folder ALE
        if folder.is_dir() and not folder.name.startswith(("_", ".")):
            names += [f"{folder.name}/{p.name[:-5]}" for p in folder.iterdir() if p.name.endswith(".toml")]
    return sorted(names)


def find_card(env: str) -> Path | None:
    """The card for ``env``: a path to a TOML file, or the name of a shipped card; None if neither."""
    if env.endswith(".toml"):
        path = Path(env)
        if not path.is_file():
            raise ValueError(f"task card {env} does not exist")
        return path
    resource = importlib.resources.files("neuroevo.tasks") / f"{env}.toml"
    return Path(str(resource)) if resource.is_file() else None


def load_card(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"task card {path} is not valid TOML: {err}") from None


#: What an env id without a card gets beyond the defaults, by id prefix: pixels go to the Nature CNN, unnormalized
#: (the defaults' MLP over normalized inputs would see 28,224 of them). The atari backend's own preprocessing
#: defaults are already the papers' (``neuroevo.envs.atari.Preprocessing``).
UNCARDED = {"ALE/": {"policy": {"kind": "cnn", "normalize_obs": False}}}


def resolve_config(env: str, overrides: dict[str, Any] | None = None) -> Config:
    """The config for ``env`` (an env id or a card path): its card if there is one, then overrides.

    Without a card, the env id runs with the defaults and ``env.id`` set, plus :data:`UNCARDED`'s settings for its
    kind (the Nature CNN for an ALE id).
    """
    path = find_card(env)
    if path is not None:
        data = load_card(path)
    else:
        data = {"env": {"id": env}}
        for prefix, settings in UNCARDED.items():
            if env.startswith(prefix):
                data.update(settings)
    config = config_from_dict(data)
    if config.run.target is None and config.env.threshold is not None and path is not None:
        config.run.target = config.env.threshold
    if overrides:
        config = config_from_dict(overrides, config)
    return config
