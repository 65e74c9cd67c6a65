"""Test session set-up.

- Headless MuJoCo rendering, chosen before anything imports mujoco.
- torch on one CPU thread: the tests' tensors are small, where intra-op threads only add overhead, and
  spinning OpenMP workers slow to a crawl when the machine's cores are busy with anything else.
"""

import os

import torch

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "osmesa"

torch.set_num_threads(1)
