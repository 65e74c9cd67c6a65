"""A user's own package, as the tests see it: an env class (``envs.Drift``) registered on import as
``Drift-v0``, and a policy network (``nets.TinyNet``). Tests put ``tests/data`` on ``sys.path`` / PYTHONPATH."""

import gymnasium as gym

gym.register("Drift-v0", entry_point="neuroevo_user_pkg.envs:Drift", max_episode_steps=20)
