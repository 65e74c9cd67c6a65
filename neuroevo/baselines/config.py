"""The ``[ppo]`` table of a task card: Stable-Baselines3 PPO settings, as the RL Zoo tunes them.

Field names are SB3's (and the Zoo's ``hyperparams/ppo.yml``), except where neuroevo already has a
word for the concept: ``lr`` (SB3's ``learning_rate``), ``num_envs`` (``n_envs``), ``steps``
(``n_timesteps``) and ``hidden`` / ``activation`` (``policy_kwargs``' ``net_arch`` / ``activation_fn``).
Importing this module does not import Stable-Baselines3.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PPOConfig:
    source: str | None = None
    """where these settings come from (e.g. the RL Zoo entry); None: SB3's defaults, and a warning says so"""
    steps: int | None = None
    """the Zoo's n_timesteps: the budget its published numbers are at (default budget of ``neuroevo compare``)"""
    reference_return: float | None = None
    """the RL Zoo's published mean return of its PPO agent at ``steps`` (benchmark.md), for the sanity check"""
    reference_std: float | None = None
    """its std over evaluation episodes (one trained agent, not a spread over seeds)"""
    num_envs: int = 1
    """parallel training envs (SB3's n_envs; DummyVecEnv, as the Zoo runs them)"""
    lr: float | str = 3e-4
    """Adam step size: a number, or ``"lin_X"`` for X decayed linearly to 0 over the run (the Zoo's notation)"""
    n_steps: int = 2048
    """steps per env in each rollout; one update ("generation") takes num_envs * n_steps env steps"""
    batch_size: int = 64
    """minibatch size of each gradient step"""
    n_epochs: int = 10
    """passes over each rollout's data per update"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalized advantage estimation (Schulman et al. 2016)"""
    clip_range: float | str = 0.2
    """a number or ``"lin_X"``, like ``lr``"""
    ent_coef: float = 0.0
    """weight of the entropy bonus in the loss"""
    vf_coef: float = 0.5
    """weight of the value-function loss"""
    max_grad_norm: float = 0.5
    """gradient norm clipping"""
    use_sde: bool = False
    """generalized state-dependent exploration (continuous actions only)"""
    sde_sample_freq: int = -1
    """with use_sde: resample the exploration noise every this many steps (-1: once per rollout)"""
    normalize: bool = False
    """the Zoo's ``normalize: true``: VecNormalize on observations and rewards (discounted with gamma);
    evaluations see observations normalized with the running statistics and report raw returns"""
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layers of both the actor and the critic (separate networks of this shape)"""
    activation: str = "tanh"
    """'tanh' or 'relu'"""
    log_std_init: float = 0.0
    """initial log standard deviation of the Gaussian action distribution (continuous actions)"""
    ortho_init: bool = True
    """orthogonal initialization of the networks' weights (SB3's default)"""
    eval_points: int = 50
    """evaluate the deterministic policy about this many times over the budget (at update boundaries)"""
    threads: int | None = 1
    """torch CPU threads while PPO trains (None: torch's default); SB3's small networks gain nothing from
    more, and spinning OpenMP workers stall when the machine's cores are busy"""
