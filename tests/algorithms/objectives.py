"""Test objectives (maximized) and a plain ask/tell loop, shared by the optimizer tests
(tests/algorithms is on sys.path: pytest's prepend import mode)."""

import math

import torch


def sphere(x):
    return -(x**2).sum(-1)


def rastrigin(x):
    return -(10 * x.shape[-1] + (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(-1))


def run(opt, fn, generations):
    for _ in range(generations):
        opt.tell(fn(opt.ask()))
    return opt
