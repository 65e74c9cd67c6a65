"""The ``[ppo]``, ``[sac]`` and ``[td3]`` tables of a task card: Stable-Baselines3 settings, as the RL Zoo tunes them.

Field names are SB3's (and the Zoo's ``hyperparams/<algo>.yml``), except where neuroevo already has a
word for the concept: ``lr`` (SB3's ``learning_rate``), ``num_envs`` (``n_envs``), ``steps``
(``n_timesteps``) and ``hidden`` / ``activation`` (``policy_kwargs``' ``net_arch`` / ``activation_fn``).
The settings every baseline has (where they come from, the Zoo's published number, evaluation, saves)
live in :class:`BaselineConfig`. Importing this module does not import Stable-Baselines3.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BaselineConfig:
    """What every Stable-Baselines3 baseline's table holds besides the algorithm's own settings."""

    source: str | None = None
    """where these settings come from (e.g. the RL Zoo entry); None: SB3's defaults, and a warning says so"""
    steps: int | None = None
    """the Zoo's n_timesteps: the budget its published numbers are at"""
    reference_return: float | None = None
    """the RL Zoo's published mean return of its agent at ``steps`` (benchmark.md), for the sanity check"""
    reference_std: float | None = None
    """its std over evaluation episodes (one trained agent, not a spread over seeds)"""
    num_envs: int = 1
    """parallel training envs (SB3's n_envs; DummyVecEnv, as the Zoo runs them)"""
    normalize: bool = False
    """the Zoo's ``normalize: true``: VecNormalize on observations and rewards (discounted with gamma);
    evaluations see observations normalized with the running statistics and report raw returns"""
    eval_points: int = 50
    """evaluate the deterministic policy about this many times over the budget (at update boundaries)"""
    save_every: int | None = 50_000
    """save the model, its replay buffer, VecNormalize's statistics and the metrics' state every this many
    env steps (at the next update boundary), so that a killed run resumes from there; None: never"""
    threads: int | None = 1
    """torch CPU threads while the baseline trains (None: torch's default); SB3's small networks gain nothing
    from more, and spinning OpenMP workers stall when the machine's cores are busy"""


@dataclass
class PPOConfig(BaselineConfig):
    """Proximal Policy Optimization (Schulman et al. 2017), on-policy."""

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
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layers of both the actor and the critic (separate networks of this shape)"""
    activation: str = "tanh"
    """'tanh' or 'relu'"""
    log_std_init: float = 0.0
    """initial log standard deviation of the Gaussian action distribution (continuous actions)"""
    ortho_init: bool = True
    """orthogonal initialization of the networks' weights (SB3's default)"""
    policy: str = "MlpPolicy"
    """SB3's policy class: ``MlpPolicy``, or ``CnnPolicy`` (Nature CNN features, as the Zoo runs Atari; ``hidden``
    and ``activation`` then do not apply)"""
    env_wrapper: str | None = None
    """``"atari"``: SB3's ``AtariWrapper`` around an ``ALE/...`` env for training, as the Zoo's Atari entry"""
    frame_stack: int = 1
    """observations stacked by ``VecFrameStack`` while training (the Zoo's 4 on Atari; 1: none)"""


@dataclass
class OffPolicyConfig(BaselineConfig):
    """The replay-buffer settings SAC and TD3 share (SB3's ``OffPolicyAlgorithm``)."""

    buffer_size: int = 1_000_000
    """transitions the replay buffer holds (the oldest are overwritten)"""
    learning_starts: int = 100
    """env steps of uniformly random actions before the first gradient step (the Zoo uses 10000 on MuJoCo)"""
    batch_size: int = 256
    """transitions per gradient step"""
    tau: float = 0.005
    """soft (Polyak) update coefficient of the target networks"""
    gamma: float = 0.99
    """discount factor"""
    train_freq: int = 1
    """env steps (per env) between two rounds of gradient steps; one round is a "generation" in the metrics"""
    gradient_steps: int = 1
    """gradient steps per round (-1: as many as env steps collected in the round)"""
    activation: str = "relu"
    """'tanh' or 'relu'"""


@dataclass
class SACConfig(OffPolicyConfig):
    """Soft Actor-Critic (Haarnoja et al. 2018), off-policy, maximum entropy."""

    lr: float | str = 3e-4
    """Adam step size of the actor, the critics and the entropy coefficient: a number or ``"lin_X"``"""
    ent_coef: float | str = "auto"
    """entropy coefficient: a number, ``"auto"`` (learned, starting at 1) or ``"auto_X"`` (learned, starting at X)"""
    target_update_interval: int = 1
    """gradient steps between two target-network updates"""
    use_sde: bool = False
    """generalized state-dependent exploration"""
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    """hidden layers of the actor and of each critic"""


@dataclass
class TD3Config(OffPolicyConfig):
    """Twin Delayed DDPG (Fujimoto et al. 2018), off-policy, deterministic actor with exploration noise."""

    lr: float | str = 1e-3
    """Adam step size of the actor and the critics: a number or ``"lin_X"``"""
    policy_delay: int = 2
    """critic updates per actor (and target) update"""
    target_policy_noise: float = 0.2
    """std of the Gaussian noise on the target policy's actions (target policy smoothing)"""
    target_noise_clip: float = 0.5
    """the target policy noise is clipped to +- this"""
    noise_type: str | None = None
    """exploration noise on the actions while training: 'normal', 'ornstein-uhlenbeck' or None (SB3's
    default; the Zoo uses 'normal' on MuJoCo)"""
    noise_std: float = 0.1
    """std of the exploration noise, in units of the action range's half-width"""
    hidden: list[int] = field(default_factory=lambda: [400, 300])
    """hidden layers of the actor and of each critic"""
