"""Task cards -> dataclass tree -> overrides."""

import pytest

from neuroevo.algorithms import ALGORITHMS
from neuroevo.config import Config, card_names, config_from_dict, parse_override, resolve_config


@pytest.mark.parametrize("card", card_names())
def test_every_shipped_card_resolves_for_every_algorithm(card):
    for algo in ALGORITHMS:
        config = resolve_config(card, {"run": {"algo": algo}})
        config.validate()
        assert config.env.id == card
        if card.startswith("ALE/"):  # Atari games have no solved score: runs go to their budget
            assert config.env.threshold is None and config.run.target is None
        else:
            assert config.env.threshold is not None and config.run.target is not None


def test_cartpole_card_is_shipped_and_sets_the_target_from_the_threshold():
    assert "CartPole-v1" in card_names()
    config = resolve_config("CartPole-v1")
    assert config.env.threshold == 475.0 and config.run.target >= 475.0


def test_overrides_win_over_the_card_and_types_are_checked():
    config = resolve_config("CartPole-v1", {"es": {"sigma": 0.5}, "run": {"generations": 3, "target": None}})
    assert config.es.sigma == 0.5 and config.run.generations == 3 and config.run.target is None
    assert config.es.popsize == resolve_config("CartPole-v1").es.popsize  # untouched fields keep the card's
    assert resolve_config("CartPole-v1", {"es": {"sigma": 1}}).es.sigma == 1.0  # int accepted for float
    with pytest.raises(ValueError, match="es.popsize must be int"):
        resolve_config("CartPole-v1", {"es": {"popsize": 2.5}})
    with pytest.raises(ValueError, match="policy.hidden must be a list"):
        resolve_config("CartPole-v1", {"policy": {"hidden": 64}})
    with pytest.raises(ValueError, match="unknown setting nope; known: aco_r, ars, cem, cmaes, de, eggroll, env, es, "):
        config_from_dict({"nope": {}})


def test_env_id_without_card_uses_defaults():
    config = resolve_config("MountainCar-v0", {"run": {"generations": 1}})
    assert config.env.id == "MountainCar-v0" and config.env.threshold is None and config.run.target is None
    assert config.policy.kind == "mlp" and config.policy.normalize_obs


def test_an_atari_game_without_a_card_gets_the_conv_policy_on_raw_pixels():
    config = resolve_config("ALE/Pong-v5")
    assert config.env.id == "ALE/Pong-v5" and config.policy.kind == "cnn" and not config.policy.normalize_obs
    assert resolve_config("ALE/Pong-v5", {"policy": {"kind": "mlp"}}).policy.kind == "mlp"  # flags still win


def test_card_path_and_broken_cards(tmp_path):
    card = tmp_path / "mine.toml"
    card.write_text('[env]\nid = "Acrobot-v1"\nthreshold = -100.0\n[run]\ngenerations = 5\n[ga]\npopsize = 12\n')
    config = resolve_config(str(card), {"run": {"algo": "ga"}})
    assert (config.env.id, config.ga.popsize, config.run.target) == ("Acrobot-v1", 12, -100.0)
    broken = tmp_path / "broken.toml"
    broken.write_text("[env\n")
    with pytest.raises(ValueError, match="broken.toml is not valid TOML"):
        resolve_config(str(broken))
    with pytest.raises(ValueError, match="does not exist"):
        resolve_config(str(tmp_path / "missing.toml"))


def test_validate_names_the_bad_value():
    config = Config()
    config.run.generations = 5
    config.run.algo = "bogus"
    with pytest.raises(ValueError, match="unknown algorithm 'bogus'"):
        config.validate()
    config.run.algo = "es"
    config.run.generations = None
    with pytest.raises(ValueError, match="no budget"):
        config.validate()


def test_parse_override():
    assert parse_override("es.sigma=0.05") == {"es": {"sigma": 0.05}}
    assert parse_override("policy.hidden=[32, 32]") == {"policy": {"hidden": [32, 32]}}
    assert parse_override("env.backend=gymnasium") == {"env": {"backend": "gymnasium"}}
    with pytest.raises(ValueError, match="must look like section.key=value"):
        parse_override("es.sigma")
