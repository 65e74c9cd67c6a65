"""neuroevo: neuroevolution on torch.

A population of P policies is one [P, D] tensor of flat parameters; optimizers (``neuroevo.algorithms``)
ask for it and are told its fitness, policies (``neuroevo.policies``) evaluate it in one batched call,
and batched envs (``make_env``) step all its episodes at once. ``Trainer`` ties them together.
"""

from neuroevo.checkpoint import load_policy, save_policy
from neuroevo.config import Config, resolve_config
from neuroevo.envs import make_env
from neuroevo.evaluator import EnvFactory, Evaluator, LocalEvaluator, make_evaluator
from neuroevo.rollout import EvalSettings, Evaluation, evaluate
from neuroevo.trainer import Trainer, TrainResult

__version__ = "0.1.0"

__all__ = [
    "Config",
    "EnvFactory",
    "EvalSettings",
    "Evaluation",
    "Evaluator",
    "LocalEvaluator",
    "TrainResult",
    "Trainer",
    "evaluate",
    "load_policy",
    "make_env",
    "make_evaluator",
    "save_policy",
    "resolve_config",
]
