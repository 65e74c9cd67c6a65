"""neuroevo tune: an Optuna study in one journal file, reported at env-step marks, continued after a crash
(its running trial queued again), its best settings an overlay that neuroevo train reuses."""

import csv
import json
import tomllib

import optuna
import pytest

from neuroevo.algorithms import ALGORITHMS, make_optimizer
from neuroevo.cli import main
from neuroevo.tune import SEARCH_SPACES, marks_of, sample, trial_config

STUDY = ["tune", "CartPole-v1", "--algo", "ars", "--budget", "2000", "--marks", "2", "--seed", "1"]


def journal_study(out):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name="neuroevo-tune", storage=storage)


def test_tune_continues_after_a_crash_and_train_reuses_the_best_settings(tmp_path, capsys):
    out = tmp_path / "study"
    assert main([*STUDY, "--trials", "2", "--jobs", "2", "--out", str(out)]) == 0
    assert "best: trial" in capsys.readouterr().out
    study = journal_study(out)
    assert len(study.trials) == 2
    for trial in study.trials:  # reported at the env-step marks, not per generation
        assert set(trial.intermediate_values) <= set(marks_of(2000, 2)) and trial.intermediate_values
    # a crash mid-trial: a trial left RUNNING in the journal, with its settings drawn
    crashed = study.ask()
    settings = sample(crashed, "ars")
    crashed.set_user_attr("settings", settings)

    assert main([*STUDY, "--trials", "3", "--out", str(out)]) == 0
    trials = journal_study(out).trials
    assert trials[2].state == optuna.trial.TrialState.FAIL and trials[2].user_attrs["crashed"]
    assert len(trials) == 4 and trials[3].params == crashed.params and trials[3].user_attrs["requeue_of"] == 2
    assert trials[3].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    with open(out / "trials.csv", newline="") as f:
        assert [row["state"] for row in csv.DictReader(f)][2] == "FAIL"
    assert len(json.loads((out / "tune.json").read_text())["commands"]) == 2

    best = tomllib.loads((out / "best.toml").read_text())
    best_trial = journal_study(out).best_trial
    assert best == {"run": {"algo": "ars"}, **best_trial.user_attrs["settings"]}
    run = tmp_path / "tuned"
    assert main(["train", "--env", "CartPole-v1", "--config", str(out / "best.toml"), "--generations", "1",
                 "--set", "run.eval_episodes=1", "--quiet", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["run"]["algo"] == "ars" and {k: config["ars"][k] for k in best["ars"]} == best["ars"]
    # the same directory with another budget is another study
    assert main([*STUDY[:5], "3000", *STUDY[6:], "--trials", "3", "--out", str(out)]) == 2
    assert "holds a study with other budget" in capsys.readouterr().err


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_every_optimizer_has_a_search_space_whose_draws_it_accepts(algo):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        settings = sample(study.ask(), algo)
        assert set(settings[algo]) == set(SEARCH_SPACES[algo])
        config = trial_config("CartPole-v1", algo, 1000, 0, settings)
        config.validate()
        make_optimizer(algo, 10, config.algo_config)  # the optimizer's own checks of its settings
