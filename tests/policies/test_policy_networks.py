"""Linear, MLP and ModulePolicy: the batched population call against a per-member loop of to_module."""

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from neuroevo.policies import MLP, Linear, ModulePolicy, Policy, make_policy, policy_from_spec

OBS_DIM, ACT_DIM, P, E = 5, 3, 6, 4


def _policies() -> list[Policy]:
    torch.manual_seed(0)
    return [
        Linear(OBS_DIM, ACT_DIM),
        Linear(OBS_DIM, ACT_DIM, bias=False),
        MLP(OBS_DIM, ACT_DIM),
        MLP(OBS_DIM, ACT_DIM, hidden=[7], activation="relu"),
        MLP(OBS_DIM, ACT_DIM, hidden=[8, 6, 4], activation="elu"),
        MLP(OBS_DIM, ACT_DIM, hidden=(16,), activation="gelu"),
        MLP(OBS_DIM, ACT_DIM, hidden=[9, 9], activation="identity"),
        MLP(OBS_DIM, ACT_DIM, hidden=[]),
        ModulePolicy(nn.Sequential(nn.Linear(OBS_DIM, 8), nn.Tanh(), nn.Linear(8, ACT_DIM)), OBS_DIM),
    ]


POLICIES = _policies()


@pytest.fixture(params=POLICIES, ids=repr)
def policy(request) -> Policy:
    return request.param


def _population(policy: Policy, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(P, policy.num_params, generator=g)


def test_batched_call_equals_per_member_modules(policy):
    params = _population(policy)
    obs = torch.randn(P, E, OBS_DIM, generator=torch.Generator().manual_seed(2))
    out = policy(params, obs)
    assert out.shape == (P, E, ACT_DIM)
    with torch.no_grad():
        expected = torch.stack([policy.to_module(params[i])(obs[i]) for i in range(P)])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_num_params_matches_module(policy):
    module = policy.to_module(torch.zeros(policy.num_params))
    assert policy.num_params == sum(p.numel() for p in module.parameters())
    assert (policy.obs_dim, policy.act_dim) == (OBS_DIM, ACT_DIM)


def test_obs_dtype_follows_params(policy):
    params = _population(policy)
    obs = torch.randn(P, E, OBS_DIM, dtype=torch.float64)
    out = policy(params, obs)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, policy(params, obs.float()))


@pytest.mark.parametrize(
    "params_shape, obs_shape, what",
    [
        ((P, 1), (P, E, OBS_DIM), "params"),
        ((P,), (P, E, OBS_DIM), "params"),
        (None, (P, OBS_DIM), "obs"),
        (None, (P + 1, E, OBS_DIM), "obs"),
        (None, (P, E, OBS_DIM + 1), "obs"),
    ],
)
def test_bad_shapes_raise(policy, params_shape, obs_shape, what):
    params = torch.zeros(params_shape or (P, policy.num_params))
    with pytest.raises(ValueError, match=f"{what} of shape") as err:
        policy(params, torch.zeros(obs_shape))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="flat params of shape"):
        policy.to_module(torch.zeros(policy.num_params + 1))


@pytest.mark.parametrize("policy", [p for p in POLICIES if not isinstance(p, ModulePolicy)], ids=repr)
def test_spec_round_trip(policy):
    spec = policy.spec()
    # Plain data only: what torch.load(weights_only=True) accepts in a checkpoint.
    assert all(isinstance(v, (str, int, float, list)) for v in spec.values())
    rebuilt = policy_from_spec(spec)
    assert rebuilt == policy and type(rebuilt) is type(policy) and rebuilt.num_params == policy.num_params
    assert rebuilt.spec() == spec


def test_spec_errors():
    with pytest.raises(ValueError, match="unknown policy kind 'rnn'.*linear, mlp"):
        policy_from_spec({"kind": "rnn", "obs_dim": 1, "act_dim": 1})
    with pytest.raises(ValueError, match="bad spec for policy kind 'mlp'"):
        policy_from_spec({"kind": "mlp", "obs_dim": 1, "act_dim": 1, "widths": [3]})
    module_spec = POLICIES[-1].spec()
    assert module_spec["kind"] == "module"
    with pytest.raises(ValueError, match=r"passed as an object cannot be rebuilt .*load_policy\(path, module=MyNet"):
        policy_from_spec(module_spec)


def test_make_policy():
    assert make_policy("mlp", 4, 2, hidden=[32], activation="relu") == MLP(4, 2, [32], "relu")
    assert make_policy("linear", 4, 2) == Linear(4, 2)
    with pytest.raises(ValueError, match="unknown policy kind 'rnn'; known kinds: cnn, linear, mlp"):
        make_policy("rnn", 4, 2)
    with pytest.raises(ValueError, match="unknown activation .swish.; allowed: tanh, relu, elu, gelu"):
        MLP(4, 2, activation="swish")


def test_linear_layout_and_init():
    policy = Linear(2, 3)
    flat = torch.arange(9.0)
    obs = torch.tensor([[[1.0, 10.0]]])
    # W = [[0, 1, 2], [3, 4, 5]] row-major, b = [6, 7, 8].
    assert policy(flat[None], obs).flatten().tolist() == [36.0, 48.0, 60.0]
    assert torch.equal(policy.init_params(), torch.zeros(9))


def test_mlp_init_params():
    policy = MLP(10, 2, hidden=[100])
    a = policy.init_params(torch.Generator().manual_seed(3))
    b = policy.init_params(torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (policy.num_params,)
    hidden_w, out_w = a[: 10 * 100], a[10 * 100 + 100 : 10 * 100 + 100 + 100 * 2]
    # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the output layer is scaled by 0.1.
    assert hidden_w.abs().max() <= 10**-0.5 and hidden_w.abs().max() > 0.9 * 10**-0.5
    assert out_w.abs().max() <= 0.1 * 0.1 and out_w.abs().max() > 0.09 * 0.1


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("policy", [p for p in POLICIES if not isinstance(p, ModulePolicy)], ids=repr)
def test_forward_does_not_copy_params(policy):
    # At large P the [P, D] population dominates memory traffic: the forward must read it through views.
    params, obs = _population(policy), torch.randn(P, E, OBS_DIM)
    with _OpRecorder() as recorder:
        policy(params, obs)
    assert not {"clone", "contiguous", "copy_", "_to_copy"} & set(recorder.ops), recorder.ops


def test_mlp_init_std_is_the_std_of_init_params_draws():
    policy = MLP(10, 2, hidden=[16])
    draws = torch.stack([policy.init_params(torch.Generator().manual_seed(s)) for s in range(400)])
    ratio = draws.std(0) / policy.init_std()
    assert 0.9 < float(ratio.mean()) < 1.1 and float(ratio.min()) > 0.75
