"""Any user ``nn.Module`` as a population policy, via ``torch.func.functional_call`` under ``torch.vmap``."""

from __future__ import annotations

import copy
import importlib
import inspect
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from neuroevo.policies.base import Policy
from neuroevo.policies.lowrank import Layout, ParamBlock


class ModulePolicy(Policy):
    """A user module mapping ``[B, obs_dim] -> [B, act_dim]``, evolved as flat parameters.

    Flat layout: the module's parameters in ``module.named_parameters()`` order, each flattened row-major
    (the layout of ``torch.nn.utils.parameters_to_vector``). Every parameter is evolved, frozen or not;
    buffers are used as they are and never evolved. ``act_dim`` comes from a dry forward on zeros
    ``[1, obs_dim]``; ``obs_dim``, if not given, is found by dry forwards too: the first ``in_features`` of the
    module's layers (in registration order) that the module accepts; a module none fits is a one-line
    ``ValueError`` asking for ``obs_dim``.

    The batched call views each parameter's slice of ``params: [P, D]`` as ``[P, *shape]`` and runs
    ``vmap(functional_call)`` over it, so the module runs in its current train/eval mode: put modules with
    dropout or batch norm in ``eval()`` first. The module's buffers must sit on params' device.

    A module named by import path (:meth:`from_path`, or ``policy.kind = "module"`` with ``policy.module`` in a
    run's config) is rebuilt from its spec by :func:`~neuroevo.policies.policy_from_spec` wherever a run is read
    (eval, resume, compare, Ray workers); a module passed as an object is not, and loading it needs the object
    again (``load_policy(path, module=MyNet())``).
    """

    kind = "module"

    def __init__(self, module: nn.Module, obs_dim: int | None = None, *, path: str | None = None,
                 kwargs: dict[str, Any] | None = None):
        self.module = module
        self.path = path
        """'package.module:ClassName' the module was built from (None: passed as an object)"""
        self.kwargs = dict(kwargs or {})
        """the keyword arguments it was built with, beside ``obs_dim`` / ``act_dim``"""
        self._names = [name for name, _ in module.named_parameters()]
        self._shapes = [p.shape for _, p in module.named_parameters()]
        self.num_params = sum(p.numel() for p in module.parameters())
        if obs_dim is None:
            obs_dim = self._infer_obs_dim()
        self.obs_dim = int(obs_dim)
        out = self._dry_forward(self.obs_dim)
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 1:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"ModulePolicy: {type(module).__name__} maps [1, {self.obs_dim}] zeros to {shape}; "
                "it should map [B, obs_dim] to [B, act_dim]"
            )
        self.act_dim = int(out.shape[1])

    def _dry_forward(self, obs_dim: int) -> Any:
        ref = next(self.module.parameters(), None)
        zeros = torch.zeros(1, obs_dim, device=ref.device if ref is not None else None,
                            dtype=ref.dtype if ref is not None else None)
        with torch.no_grad():
            return self.module(zeros)

    def _infer_obs_dim(self) -> int:
        """The first ``in_features`` among the module's layers for which a dry forward on [1, in_features]
        zeros gives [1, act_dim] (a module may register its output layer first)."""
        sizes: list[int] = []
        for layer in self.module.modules():
            size = getattr(layer, "in_features", None)
            if isinstance(size, int) and size not in sizes:
                sizes.append(size)
        for size in sizes:
            try:
                out = self._dry_forward(size)
            except (RuntimeError, ValueError, IndexError):  # a shape mismatch: not the input size
                continue
            if isinstance(out, Tensor) and out.ndim == 2 and out.shape[0] == 1:
                return size
        tried = f" (tried the in_features of its layers: {sizes})" if sizes else ""
        raise ValueError(
            f"ModulePolicy: cannot infer obs_dim of {type(self.module).__name__}{tried}; "
            "pass it: ModulePolicy(module, obs_dim=...)"
        )

    @classmethod
    def from_path(cls, path: str, obs_dim: int, act_dim: int | None = None,
                  kwargs: dict[str, Any] | None = None) -> ModulePolicy:
        """The policy of ``Class(**kwargs)`` named by ``path`` ("package.module:ClassName"; a function returning
        an ``nn.Module`` works too). The constructor also gets ``obs_dim`` and ``act_dim`` where it takes
        arguments of those names (as an SB3 policy gets the spaces). A one-line ``ValueError`` for a path that
        does not import or a constructor that refuses the arguments."""
        build = import_object(path)
        kwargs = dict(kwargs or {})
        args = dict(kwargs)
        try:
            accepted = inspect.signature(build).parameters
        except (TypeError, ValueError):  # some builtins have no signature
            accepted = {}  # type: ignore[assignment]
        for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim)):
            if name in accepted and name not in args and value is not None:
                args[name] = value
        try:
            module = build(**args)
        except TypeError as err:
            raise ValueError(f"policy module {path}: cannot build it with {args}: {err}") from None
        if not isinstance(module, nn.Module):
            raise ValueError(f"policy module {path} gave a {type(module).__name__}, not a torch nn.Module")
        return cls(module, obs_dim, path=path, kwargs=kwargs)

    def _member_forward(self, member_params: dict[str, Tensor], obs: Tensor) -> Tensor:
        # Parameters come from the batch; buffers (not in the dict) fall back to the module's own.
        return functional_call(self.module, member_params, (obs,))

    def _forward(self, params: Tensor, obs: Tensor) -> Tensor:
        P = params.shape[0]
        batched: dict[str, Tensor] = {}
        offset = 0
        for name, shape in zip(self._names, self._shapes, strict=True):
            n = shape.numel()
            # A column slice viewed as [P, *shape] stays a view of params: no copy of the population.
            batched[name] = params[:, offset : offset + n].view(P, *shape)
            offset += n
        return torch.vmap(self._member_forward)(batched, obs)

    def param_layout(self) -> Layout:
        """A block per parameter in flat order: an ``nn.Linear`` weight as its [out, in] matrix, an ungrouped
        ``nn.Conv2d`` weight as [out, in x kh x kw] (low-rank noise in EGGROLL), any other tensor 1-D (full-rank
        noise). The population forward runs on the members' dense rows (vmap over a user module)."""
        matrices: dict[int, tuple[int, int]] = {}
        for m in self.module.modules():
            if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1):
                matrices[id(m.weight)] = (m.weight.shape[0], m.weight[0].numel())
        blocks, offset = [], 0
        for _, p in self.module.named_parameters():
            blocks.append(ParamBlock(offset, matrices.get(id(p), (p.numel(),))))
            offset += p.numel()
        return tuple(blocks)

    def init_params(self, generator: torch.Generator | None = None, device=None) -> Tensor:
        """An initial center [D]: for a module named by path, given a ``generator``, the parameters of a fresh
        ``Class(**kwargs)`` built under torch's global RNG seeded from it (its own init, reproducible from the
        run's seed); otherwise the module's current parameters (an object's init cannot be re-run)."""
        module = self.module
        if self.path is not None and generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                module = type(self).from_path(self.path, self.obs_dim, self.act_dim, self.kwargs).module
        flat = parameters_to_vector(module.parameters()).detach().clone()
        return flat.to(device) if device is not None else flat

    @property
    def reproducible_init(self) -> bool:
        """A module named by path is built afresh from the run's seed; an object's init is its own."""
        return self.path is not None

    def to_module(self, flat_params: Tensor) -> nn.Module:
        """A deep copy of the module on flat_params' device, its parameters set to ``flat_params: [D]``."""
        self.check_flat(flat_params)
        member = copy.deepcopy(self.module).to(flat_params.device)
        # Clone: vector_to_parameters makes the parameters views of the vector it is given.
        vector_to_parameters(flat_params.detach().clone(), member.parameters())
        return member

    def _spec_args(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "num_params": self.num_params,
            "module_class": type(self.module).__qualname__,
            "module": self.path,
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ModulePolicy:
        """Rebuild from :meth:`spec` output; only a module named by path can be (a one-line ``ValueError``
        otherwise, saying how to pass the module)."""
        path = spec.get("module")
        if path is None:
            raise ValueError(
                f"a 'module' policy ({spec.get('module_class', 'a user nn.Module')}) passed as an object cannot be "
                "rebuilt from the run's files: pass the module (load_policy(path, module=MyNet()), "
                "Trainer.resume(run_dir, policy=ModulePolicy(MyNet()))), or name it by import path in the config "
                "(policy.kind = 'module', policy.module = 'package.module:MyNet')"
            )
        policy = cls.from_path(path, int(spec["obs_dim"]), spec.get("act_dim"), spec.get("kwargs"))
        if "num_params" in spec and policy.num_params != spec["num_params"]:
            raise ValueError(
                f"policy module {path}{spec.get('kwargs') or ''} now has {policy.num_params} parameters; "
                f"the saved one had {spec['num_params']} (was the class changed?)"
            )
        return policy

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModulePolicy):
            return False
        if self.path is not None:
            return other.spec() == self.spec()
        return other.module is self.module and other.obs_dim == self.obs_dim

    def __hash__(self) -> int:
        return hash((self.path, self.obs_dim) if self.path is not None else (id(self.module), self.obs_dim))

    def __repr__(self) -> str:
        name = self.path or type(self.module).__name__
        return f"ModulePolicy({name}, obs_dim={self.obs_dim}, act_dim={self.act_dim})"


def import_object(path: str) -> Any:
    """The object named by ``"package.module:name"`` (a one-line ``ValueError`` if it does not import)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r} for {path!r} ({err}); is it on PYTHONPATH?") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{path!r}: {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    return target
