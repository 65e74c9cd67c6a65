"""Deprecated: :mod:`neuroevo.playback` (a saved policy's return and video) took this module's place, so that
"evaluation" means the population's only."""

import warnings

from neuroevo.playback import evaluate_checkpoint, record_video

warnings.warn("neuroevo.evaluation is now neuroevo.playback", DeprecationWarning, stacklevel=2)

__all__ = ["evaluate_checkpoint", "record_video"]
