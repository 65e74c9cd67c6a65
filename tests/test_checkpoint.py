"""Checkpoint and policy files: atomic writes, safe and clear loading, spaces and policy records round-trip."""

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from neuroevo.checkpoint import (
    CHECKPOINT_FORMAT,
    POLICY_FORMAT,
    REQUIRED_FIELDS,
    atomic_save,
    atomic_write,
    atomic_write_json,
    load_file,
    load_policy,
    policy_record,
    read_policy,
    space_from_dict,
    space_to_dict,
    unpack_policy_record,
)
from neuroevo.policies import MLP, DeployedPolicy, Linear, ModulePolicy, ObsNormalizer

OBS_DIM = 5
DISCRETE = gym.spaces.Discrete(3, start=-1)
BOX = gym.spaces.Box(
    low=np.array([[-1.0, -2.0], [0.0, -0.5]], dtype=np.float32),
    high=np.array([[1.0, 0.5], [3.0, 0.25]], dtype=np.float32),
    dtype=np.float32,
)


# -- atomic writes --------------------------------------------------------------------------------


def test_atomic_write_creates_parents_and_writes_the_content(tmp_path):
    path = tmp_path / "a" / "b" / "file.bin"
    atomic_write(path, lambda f: f.write(b"hello"))
    assert path.read_bytes() == b"hello"
    assert os.listdir(path.parent) == ["file.bin"]  # no temporary file left beside it
    atomic_write(str(path), lambda f: f.write(b"replaced"))  # a str path, over an existing file
    assert path.read_bytes() == b"replaced"
    assert os.listdir(path.parent) == ["file.bin"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, error):
    path = tmp_path / "run" / "last.pt"
    atomic_write(path, lambda f: f.write(b"generation 3"))

    def dies_midway(f):
        f.write(b"half of generation 4")
        raise error("killed")

    with pytest.raises(error, match="killed"):
        atomic_write(path, dies_midway)
    assert path.read_bytes() == b"generation 3"
    assert os.listdir(path.parent) == ["last.pt"]
    # with no previous file, nothing at all is left
    with pytest.raises(error):
        atomic_write(tmp_path / "run" / "new.pt", dies_midway)
    assert os.listdir(path.parent) == ["last.pt"]


def test_atomic_save_and_atomic_write_json(tmp_path):
    obj = {"format": "x", "t": torch.arange(6.0).reshape(2, 3), "n": 3, "nested": {"s": "a", "l": [1, 2.5]}}
    atomic_save(obj, tmp_path / "deep" / "obj.pt")
    loaded = torch.load(tmp_path / "deep" / "obj.pt", weights_only=True)
    assert loaded.keys() == obj.keys() and torch.equal(loaded["t"], obj["t"])
    assert loaded["nested"] == obj["nested"] and loaded["n"] == 3

    data = {"a": 1, "b": [1.5, None, "x"], "c": {"d": True}}
    atomic_write_json(tmp_path / "deep" / "er" / "data.json", data)
    text = (tmp_path / "deep" / "er" / "data.json").read_text()
    assert json.loads(text) == data
    assert text.endswith("}\n") and '\n  "a": 1' in text  # indented, one trailing newline
    assert sorted(os.listdir(tmp_path / "deep")) == ["er", "obj.pt"]


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_atomic_save_that_fails_keeps_the_previous_file(tmp_path):
    path = tmp_path / "obj.pt"
    atomic_save({"format": "x", "v": 1}, path)
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        atomic_save({"format": "x", "big": torch.zeros(1000), "v": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"format": "x", "v": 1}
    assert os.listdir(tmp_path) == ["obj.pt"]


# -- load_file ------------------------------------------------------------------------------------


def _one_line_error(path, expected_format=None) -> str:
    with pytest.raises(ValueError) as info:
        load_file(path, expected_format)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def test_load_file_reads_a_neuroevo_file_and_checks_its_format(tmp_path):
    path = tmp_path / "ckpt.pt"
    record = {"format": CHECKPOINT_FORMAT, **dict.fromkeys(REQUIRED_FIELDS[CHECKPOINT_FORMAT], 0), "generation": 4}
    atomic_save(record, path)
    assert load_file(path) == record
    assert load_file(str(path), CHECKPOINT_FORMAT)["generation"] == 4
    message = _one_line_error(path, POLICY_FORMAT)
    assert message == f"{path}: holds {CHECKPOINT_FORMAT!r}, expected {POLICY_FORMAT!r}"


def test_load_file_missing_foreign_and_corrupt_files(tmp_path):
    assert _one_line_error(tmp_path / "nope.pt") == f"{tmp_path / 'nope.pt'}: no such file"
    assert _one_line_error(tmp_path) == f"{tmp_path}: no such file"  # a directory is not a file

    for name, obj in [("list.pt", [1, 2, 3]), ("dict.pt", {"params": torch.zeros(3)}), ("tensor.pt", torch.ones(2))]:
        torch.save(obj, tmp_path / name)
        message = _one_line_error(tmp_path / name)
        assert message == f"{tmp_path / name}: not a neuroevo checkpoint or policy file"

    garbage = tmp_path / "random.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "not a readable neuroevo file: truncated or corrupted (" in _one_line_error(garbage)

    truncated = tmp_path / "truncated.pt"
    atomic_save({"format": CHECKPOINT_FORMAT, "big": torch.zeros(10_000)}, tmp_path / "whole.pt")
    truncated.write_bytes((tmp_path / "whole.pt").read_bytes()[:3000])
    assert "not a readable neuroevo file: truncated or corrupted (" in _one_line_error(truncated)
    atomic_save({"format": CHECKPOINT_FORMAT, "generation": 4}, path := tmp_path / "incomplete.pt")
    assert _one_line_error(path, CHECKPOINT_FORMAT) == (
        f"{path}: incomplete {CHECKPOINT_FORMAT} file: no config, " + ", ".join(REQUIRED_FIELDS[CHECKPOINT_FORMAT][2:]))


CALLS: list[str] = []


def _payload(text: str) -> dict:
    CALLS.append(text)
    return {"format": POLICY_FORMAT}


class Exploit:
    """Unpickling this calls ``_payload``: what a malicious file does with ``os.system``."""

    def __reduce__(self):
        return (_payload, ("ran",))


def test_load_file_refuses_to_unpickle_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(Exploit(), path)
    CALLS.clear()
    message = _one_line_error(path)
    assert "refused: it holds Python objects, not only tensors and numbers" in message
    assert CALLS == []  # weights_only=True: the payload never ran
    # the file does run it when loaded unsafely, so the check above is a real one
    assert torch.load(path, weights_only=False) == {"format": POLICY_FORMAT} and CALLS == ["ran"]


# -- action spaces --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Discrete(4),
        gym.spaces.Discrete(3, start=-1),
        BOX,
        gym.spaces.Box(low=-2.0, high=2.0, shape=(3,), dtype=np.float32),
        gym.spaces.Box(low=-np.inf, high=np.inf, shape=(1, 2, 2), dtype=np.float32),
        gym.spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float64),  # a user's env may act in float64
    ],
)
def test_spaces_round_trip_through_a_file(tmp_path, space):
    atomic_save({"format": "x", "space": space_to_dict(space)}, tmp_path / "space.pt")
    back = space_from_dict(load_file(tmp_path / "space.pt")["space"])
    assert back == space and type(back) is type(space)
    if isinstance(space, gym.spaces.Box):
        assert back.shape == space.shape and back.dtype == space.dtype
        assert np.array_equal(back.low, space.low) and np.array_equal(back.high, space.high)
    else:
        assert (back.n, back.start) == (space.n, space.start)


def test_a_box_saved_without_its_dtype_reads_as_float32():
    data = space_to_dict(BOX)
    del data["dtype"]  # as policy files written before the dtype was stored
    assert space_from_dict(data).dtype == np.float32


def test_an_unsupported_space_is_refused():
    with pytest.raises(ValueError, match="cannot store action space"):
        space_to_dict(gym.spaces.MultiDiscrete([2, 3]))


# -- policy records -------------------------------------------------------------------------------


def _normalizer(seed: int = 0) -> ObsNormalizer:
    normalizer = ObsNormalizer(OBS_DIM, clip=3.0, eps=1e-6)
    normalizer.update(torch.randn(50, OBS_DIM, generator=torch.Generator().manual_seed(seed)) * 2 + 1)
    return normalizer


def _params(policy, seed: int = 1) -> torch.Tensor:
    return torch.randn(policy.num_params, generator=torch.Generator().manual_seed(seed))


POLICIES = {
    "linear": lambda act_dim: Linear(OBS_DIM, act_dim),
    "mlp": lambda act_dim: MLP(OBS_DIM, act_dim, hidden=[8, 6], activation="relu"),
}


@pytest.mark.parametrize("kind", POLICIES)
@pytest.mark.parametrize("space", [DISCRETE, BOX], ids=["discrete", "box"])
@pytest.mark.parametrize("with_normalizer", [True, False], ids=["normalized", "raw"])
def test_policy_record_round_trips_through_a_file(tmp_path, kind, space, with_normalizer):
    policy = POLICIES[kind](3 if space is DISCRETE else 4)
    params = _params(policy).requires_grad_()
    original = params.detach().clone()
    normalizer = _normalizer() if with_normalizer else None
    record = policy_record(policy, params, space, normalizer, "Some-v1", generation=7, eval_return=12.5)
    assert record["format"] == POLICY_FORMAT and record["env_id"] == "Some-v1"
    assert record["info"] == {"generation": 7, "eval_return": 12.5}
    assert not record["params"].requires_grad
    with torch.no_grad():
        params.add_(1.0)  # the record holds a copy
    assert torch.equal(record["params"], original)

    atomic_save(record, tmp_path / "best_policy.pt")
    got_policy, got_params, got_space, got_norm = unpack_policy_record(load_file(tmp_path / "best_policy.pt"))
    assert got_policy == policy and type(got_policy) is type(policy)
    assert torch.equal(got_params, original)
    assert got_space == space
    if normalizer is None:
        assert got_norm is None
    else:
        assert (got_norm.obs_dim, got_norm.clip, got_norm.eps) == (OBS_DIM, 3.0, 1e-6)
        for name in ("count", "mean", "m2"):
            assert torch.equal(getattr(got_norm, name), getattr(normalizer, name))
        obs = torch.randn(10, OBS_DIM) * 5
        assert torch.equal(got_norm.normalize(obs), normalizer.normalize(obs))


def test_wrong_parameter_count_is_a_clear_error():
    policy = POLICIES["mlp"](3)
    record = policy_record(policy, _params(policy), DISCRETE, None, "Some-v1")
    record["params"] = record["params"][:-2]
    with pytest.raises(ValueError) as info:
        unpack_policy_record(record, where="run/best_policy.pt")
    assert str(info.value) == (
        f"run/best_policy.pt: {policy.num_params - 2} parameters stored, but the mlp policy needs {policy.num_params}"
    )


class UserNet(nn.Module):
    def __init__(self, hidden: int = 7):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(OBS_DIM, hidden), nn.Tanh(), nn.Linear(hidden, 3))

    def forward(self, x):
        return self.body(x)


def test_a_module_policy_record_needs_its_module(tmp_path):
    torch.manual_seed(0)
    policy = ModulePolicy(UserNet(), OBS_DIM)
    params = _params(policy)
    normalizer = _normalizer()
    atomic_save(policy_record(policy, params, DISCRETE, normalizer, "Some-v1"), tmp_path / "best_policy.pt")
    record = load_file(tmp_path / "best_policy.pt")

    with pytest.raises(ValueError, match=r"as an object cannot be rebuilt .*load_policy\(path, module=MyNet\(\)\)"):
        unpack_policy_record(record)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'best_policy.pt'}: a 'module' policy \\(UserNet\\)"):
        load_policy(tmp_path)

    fresh = UserNet()  # the same architecture, other weights: the stored params replace them
    got_policy, got_params, got_space, got_norm = unpack_policy_record(record, fresh)
    assert isinstance(got_policy, ModulePolicy) and got_policy.module is fresh
    assert (got_policy.obs_dim, got_policy.act_dim) == (OBS_DIM, 3)
    assert torch.equal(got_params, params) and got_space == DISCRETE
    assert torch.equal(got_norm.mean, normalizer.mean)

    deployed = load_policy(tmp_path, module=UserNet())
    obs = torch.randn(32, OBS_DIM, generator=torch.Generator().manual_seed(3)) * 3
    expected = DeployedPolicy.build(policy, params, DISCRETE, normalizer)
    assert torch.equal(deployed(obs), expected(obs))

    with pytest.raises(ValueError, match="parameters stored, but the module policy needs"):
        unpack_policy_record(record, UserNet(hidden=4))  # another architecture


# -- reading and deploying ------------------------------------------------------------------------


def _write_run(tmp_path, space=BOX):
    policy = POLICIES["mlp"](4 if space is BOX else 3)
    params, normalizer = _params(policy, seed=5), _normalizer(seed=6)
    record = policy_record(policy, params, space, normalizer, "Some-v1", generation=2)
    run = tmp_path / "run"
    atomic_save(record, run / "best_policy.pt")
    atomic_save({"format": CHECKPOINT_FORMAT, "generation": 3, "solution": record}, run / "checkpoints" / "last.pt")
    return run, policy, params, normalizer


def test_read_policy_accepts_a_policy_file_a_checkpoint_and_a_run_directory(tmp_path):
    run, policy, params, normalizer = _write_run(tmp_path)
    for path in (run / "best_policy.pt", run / "checkpoints" / "last.pt", run, str(run)):
        got_policy, got_params, got_space, got_norm, record = read_policy(path)
        assert got_policy == policy and torch.equal(got_params, params) and got_space == BOX
        assert torch.equal(got_norm.m2, normalizer.m2)
        assert record["format"] == POLICY_FORMAT and record["info"] == {"generation": 2}


def test_read_policy_refuses_other_files(tmp_path):
    atomic_save({"format": "neuroevo-other/1"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: holds 'neuroevo-other/1', not a policy or checkpoint$"):
        read_policy(tmp_path / "other.pt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ValueError, match=r"empty_run/best_policy\.pt: no such file$"):
        read_policy(tmp_path / "empty_run")


@pytest.mark.parametrize("space", [DISCRETE, BOX], ids=["discrete", "box"])
def test_load_policy_matches_deployed_policy_build(tmp_path, space):
    run, policy, params, normalizer = _write_run(tmp_path, space)
    expected = DeployedPolicy.build(policy, params, space, normalizer)
    obs = torch.randn(64, OBS_DIM, generator=torch.Generator().manual_seed(9)) * 3
    for path in (run, run / "checkpoints" / "last.pt"):
        deployed = load_policy(path, device="cpu")
        assert isinstance(deployed, DeployedPolicy)
        actions = deployed(obs)
        assert torch.equal(actions, expected(obs))
        assert actions.shape == ((64,) if space is DISCRETE else (64, 2, 2))
        if space is BOX:
            low, high = torch.as_tensor(BOX.low), torch.as_tensor(BOX.high)
            assert ((actions >= low) & (actions <= high)).all()
        else:
            assert set(actions.tolist()) <= {-1, 0, 1}
