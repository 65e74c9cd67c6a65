"""Test session set-up: headless MuJoCo rendering, chosen before anything imports mujoco."""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "osmesa"
