"""A user's policy network that registers its output layer first (inferring obs_dim from the first
``nn.Linear`` would take 8 for it)."""

from torch import nn


class TinyNet(nn.Module):
    """obs [B, obs_dim] -> [B, act_dim] through ``hidden`` tanh units."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 8):
        super().__init__()
        self.out = nn.Linear(hidden, act_dim)
        self.inp = nn.Linear(obs_dim, hidden)

    def forward(self, obs):
        return self.out(self.inp(obs).tanh())
