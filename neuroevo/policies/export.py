"""A deployed policy as an ONNX file, for runtimes without Python or torch (onnxruntime, TensorRT, a browser).

Needs ``pip install 'neuroevo[onnx]'`` (onnx and onnxscript: torch's exporter, ``torch.onnx.export(...,
dynamo=True)``, writes the graph through onnxscript).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import torch

from neuroevo.policies.deploy import DeployedPolicy


def export_onnx(policy: DeployedPolicy, path: str | Path) -> Path:
    """Write ``policy`` (e.g. ``neuroevo.load_policy(run_dir)``) to ``path`` as an ONNX graph with one input
    ``obs`` [B, obs_dim] (float32, any batch size B) and one output ``action`` (int64 [B] for a ``Discrete``
    space, [B, *shape] for a ``Box``): the normalizer, the network and the action head, as in ``policy(obs)``.
    Returns ``path``; a one-line ``ImportError`` naming the ``onnx`` extra when onnx or onnxscript is missing."""
    try:
        import onnx  # noqa: F401  (the exporter imports them lazily; fail early with the extra's name)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(f"ONNX export needs onnx and onnxscript: pip install 'neuroevo[onnx]' ({err})") from None
    if not isinstance(policy, DeployedPolicy):
        raise ValueError(f"export_onnx takes a DeployedPolicy (neuroevo.load_policy(...)), got {type(policy).__name__}")
    module = copy.deepcopy(policy).cpu().eval()
    example = torch.zeros(2, module.obs_dim, dtype=module.obs_dtype)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The exporter narrates its passes on stdout and logs skipped torchvision ops: quiet for a library call.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations inside the exporter
            torch.onnx.export(
                module, (example,), str(path), dynamo=True, input_names=["obs"], output_names=["action"],
                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    return path
