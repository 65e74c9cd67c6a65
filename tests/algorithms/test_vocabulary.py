"""One vocabulary across optimizers (STYLE.md, principle 2): ``lr`` the center's learning rate, ``sigma`` the
spread and ``sigma_*`` its settings, ``max_speed`` only ClipUp's cap on the velocity's norm. Settings renamed
to it (a config's ``renamed``: old -> new) still work under their old names, with a DeprecationWarning, and
give bit-identical runs."""

import dataclasses
import importlib.util
import warnings

import pytest
import torch
from objectives import rastrigin  # tests/algorithms/objectives.py

from neuroevo.algorithms import ALGORITHMS, make_optimizer
from neuroevo.config import config_from_dict

needs_evotorch = pytest.mark.skipif(importlib.util.find_spec("evotorch") is None, reason="needs evotorch")

# Every renamed setting under its old name, at a value other than its default, per optimizer.
OLD_NAMES = [
    pytest.param("cmaes", {"sigma": 0.5, "c_m": 0.7, "stdev_min": 0.05, "stdev_max": 0.4}, marks=needs_evotorch),
    pytest.param("cmaes", {"sigma": 0.5, "separable": True, "c_m": 0.7, "stdev_min": 0.05, "stdev_max": 0.4},
                 marks=needs_evotorch, id="sep-cmaes"),
    pytest.param("pgpe", {"popsize": 20, "radius_init": 0.9, "center_learning_rate": 0.03, "stdev_learning_rate": 0.2,
                          "stdev_max_change": 0.3}, marks=needs_evotorch),
    pytest.param("snes", {"sigma": 0.5, "center_learning_rate": 0.8, "stdev_learning_rate": 0.3}, marks=needs_evotorch),
    pytest.param("xnes", {"sigma": 0.5, "center_learning_rate": 0.8, "stdev_learning_rate": 0.3}, marks=needs_evotorch),
    pytest.param("cem", {"popsize": 20, "sigma": 0.5, "stdev_min": 0.05, "stdev_max": 0.6, "stdev_max_change": 0.5},
                 marks=needs_evotorch),
    pytest.param("pso", {"popsize": 10, "sigma": 2.0, "max_speed": 0.05}),
]

# Names that belong to EvoTorch's vocabulary (or to another concept in ours), not in any optimizer's config.
FOREIGN = ("center_learning_rate", "stdev", "radius_init", "c_m")


def _new_names(algo, kwargs):
    renamed = ALGORITHMS[algo].config_class.renamed
    return {renamed.get(key, key): value for key, value in kwargs.items()}


def _trajectory(opt, generations=5):
    populations = []
    for _ in range(generations):
        params = opt.ask()
        populations.append(params)
        opt.tell(rastrigin(params))
    return populations, opt.center


@pytest.fixture(params=sorted(ALGORITHMS))
def config_class(request):
    return ALGORITHMS[request.param].config_class


def test_configs_speak_one_vocabulary(config_class):
    fields = {f.name for f in dataclasses.fields(config_class)}
    assert not [name for name in fields if name.startswith(FOREIGN) or name.endswith("learning_rate")]
    if "max_speed" in fields:  # ClipUp's cap on the velocity's norm, and nothing else
        assert config_class.__name__ == "PGPEConfig"
    renamed = getattr(config_class, "renamed", {})
    assert not set(renamed) & fields, "an old name is still a field"
    assert set(renamed.values()) <= fields, "a setting is renamed to a field that does not exist"
    assert "renamed" not in fields  # a class variable, not a setting


@pytest.mark.parametrize("algo, old", OLD_NAMES)
def test_old_names_map_to_the_new_ones(algo, old):
    for key, value in old.items():
        new = _new_names(algo, {key: value})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            via_old = make_optimizer(algo, 6, **{key: value}).config
        assert via_old == make_optimizer(algo, 6, **new).config, key


@pytest.mark.parametrize("algo, old", OLD_NAMES)
def test_old_names_warn_and_give_identical_runs(algo, old):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new names are not deprecated
        new_run = _trajectory(make_optimizer(algo, torch.ones(6), seed=3, **_new_names(algo, old)))
    renamed_keys = [key for key in old if key in ALGORITHMS[algo].config_class.renamed]
    with pytest.warns(DeprecationWarning) as record:
        old_run = _trajectory(make_optimizer(algo, torch.ones(6), seed=3, **old))
    messages = " ".join(str(w.message) for w in record)
    assert all(f"{key} is now" in messages for key in renamed_keys), messages
    for a, b in zip(old_run[0], new_run[0], strict=True):
        assert torch.equal(a, b)
    assert torch.equal(old_run[1], new_run[1])


@pytest.mark.parametrize("algo, old", OLD_NAMES)
def test_old_names_in_a_task_card_or_set(algo, old):
    with pytest.warns(DeprecationWarning, match=f"setting {algo}\\."):
        via_old = config_from_dict({algo: old})
    assert via_old.algorithms[algo] == config_from_dict({algo: _new_names(algo, old)}).algorithms[algo]


def test_pgpe_center_learning_rate_through_config_from_dict():
    with pytest.warns(DeprecationWarning, match=r"pgpe\.center_learning_rate is now pgpe\.lr"):
        config = config_from_dict({"pgpe": {"center_learning_rate": 0.1}})
    assert config.pgpe.lr == 0.1


@pytest.mark.parametrize("algo, old", OLD_NAMES)
def test_state_saved_under_old_names_continues_identically(algo, old):
    # A checkpoint written before the renames carries the old names in its config.
    a = make_optimizer(algo, torch.ones(6), seed=4, **_new_names(algo, old))
    _trajectory(a, 2)
    state = a.state_dict()
    inverse = {new: key for key, new in ALGORITHMS[algo].config_class.renamed.items()}
    state["config"] = {inverse.get(key, key): value for key, value in state["config"].items()}
    b = make_optimizer(algo, torch.zeros(6), seed=99)
    b.load_state_dict(state)
    assert b.config == a.config
    for x, y in zip(_trajectory(a, 3)[0], _trajectory(b, 3)[0], strict=True):
        assert torch.equal(x, y)
