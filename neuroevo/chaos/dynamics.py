"""Attack 5: bad dynamics. Members whose policy emits NaN or inf (non-finite parameters), envs that return NaN
observations or NaN / infinite rewards for some episodes: the run goes on and exactly those members rank last
(their fitness is non-finite, counted in ``train/nonfinite_fitness``). An env that raises mid-episode, and a
generation where every episode is NaN: the run stops with a one-line error, a checkpoint of the last finished
generation and the resume command; once the env is fixed, ``--resume`` finishes the run."""

from __future__ import annotations

import shutil
from typing import Any

import torch

from neuroevo.chaos import Outcome, Settings
from neuroevo.chaos import envs as chaos_envs
from neuroevo.config import resolve_config
from neuroevo.trainer import Trainer


def _config(env_id: str, generations: int, popsize: int = 12) -> Any:
    return resolve_config(env_id, {
        "run": {"algo": "es", "generations": generations, "target": None, "eval_episodes": 2, "seed": 5,
                "device": "cpu"},
        "env": {"max_steps": 60, "backend": "gymnasium" if env_id.startswith("Chaos") else "auto"},
        "policy": {"kind": "linear", "normalize_obs": False},
        "es": {"popsize": popsize},
    })


class _Spy:
    """Wraps a trainer's evaluator: keeps each generation's fitness, and optionally breaks rows of the params."""

    def __init__(self, trainer: Trainer, poison: dict[int, float] | None = None):
        self.trainer, self.poison = trainer, poison or {}
        self.returns: list[torch.Tensor] = []
        self.inner: Any = trainer.evaluator
        self.inner_evaluate = self.inner.evaluate
        self.inner.evaluate = self.evaluate  # type: ignore[method-assign]

    def evaluate(self, population, settings, optimizer=None):
        if self.poison:
            params = self.inner.members(population, optimizer).clone()
            for row, value in self.poison.items():
                params[row, row % params.shape[1]] = value
            population, optimizer = params, None
        result = self.inner_evaluate(population, settings, optimizer)
        self.returns.append(result.returns.clone())
        return result


def attack(settings: Settings) -> list[Outcome]:
    generations = 2 if settings.quick else 10
    return [_rank_last(settings, generations), _stops_cleanly(settings)]


def _rank_last(settings: Settings, generations: int) -> Outcome:
    outcome = Outcome("NaN/inf policies, NaN observations, NaN/inf rewards: those members rank last",
                      command="neuroevo.chaos.dynamics (CartPole-v1, Pendulum-v1, neuroevo.chaos.envs:Chaos*-v0)")
    cases: list[tuple[str, dict[int, float] | None]] = [
        ("CartPole-v1", {1: float("nan"), 4: float("inf"), 7: float("-inf")}),
        ("Pendulum-v1", {0: float("nan"), 5: float("inf")}),
        ("ChaosNaNObs-v0", None), ("ChaosNaNReward-v0", None), ("ChaosInfReward-v0", None),
    ]
    for env_id, poison in cases:
        try:
            trainer = Trainer(_config(env_id, generations))
            spy = _Spy(trainer, poison)
            result = trainer.run()
        except Exception as err:  # noqa: BLE001 - a run that stops here is the failure counted
            outcome.check(False, f"{env_id}: the run stopped: {type(err).__name__}: {err}")
            continue
        problems = []
        for generation, (returns, row) in enumerate(zip(spy.returns, result.history, strict=True), 1):
            bad = ~torch.isfinite(returns)
            if poison is not None and set(bad.nonzero().flatten().tolist()) != set(poison):
                problems.append(f"generation {generation}: non-finite members {bad.nonzero().flatten().tolist()}, "
                                f"poisoned {sorted(poison)}")
            if poison is None and not bad.any() and generation == 1:
                problems.append("no episode went bad: the attack did not happen")
            if bad.all():
                problems.append(f"generation {generation}: every member non-finite")
            if row["train/nonfinite_fitness"] != int(bad.sum()):
                problems.append(f"generation {generation}: nonfinite_fitness {row['train/nonfinite_fitness']} "
                                f"!= {int(bad.sum())}")
        if not torch.isfinite(result.solution).all():
            problems.append("the solution is not finite")
        outcome.check(not problems, f"{env_id}: {problems[:2]}")
    return outcome


def _stops_cleanly(settings: Settings) -> Outcome:
    outcome = Outcome("an env raising mid-episode, every episode NaN: clear stop, checkpoint, resume",
                      command="neuroevo train --env neuroevo.chaos.envs:ChaosRaise-v0 ...; then --resume")
    work = settings.work / "stops"
    shutil.rmtree(work, ignore_errors=True)
    # An env that raises after 4 generations' steps (12 members x up to 50 steps, 2 evaluation episodes)
    chaos_envs.ChaosEnv.steps_taken = 0
    chaos_envs.ChaosEnv.raise_after = 1_500
    run = work / "raise"
    try:
        Trainer(_config("ChaosRaise-v0", 20), run).run()
        outcome.check(False, "ChaosRaise: the run did not stop")
    except Exception as err:  # noqa: BLE001
        message = str(err)
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        ok = ("ChaosRaise: the simulator crashed" in message and "--resume" in message and "\n" not in message
              and f"checkpoint of generation {state['generation']}" in message and state["generation"] >= 1)
        outcome.check(ok, f"ChaosRaise: {type(err).__name__}: {message}")
        outcome.details["raise"] = message
        chaos_envs.ChaosEnv.raise_after = None  # the env fixed: the run continues to its end
        try:
            finished = Trainer.resume(run).run()
            outcome.check(finished.generations == 20, f"ChaosRaise resumed to {finished.generations} generations")
        except Exception as err2:  # noqa: BLE001
            outcome.check(False, f"ChaosRaise resume: {type(err2).__name__}: {err2}")
    finally:
        chaos_envs.ChaosEnv.raise_after = 2_000
    # every member NaN from the second generation on: nothing to rank
    run = work / "all-nan"
    trainer = Trainer(_config("CartPole-v1", 5), run)
    spy = _Spy(trainer)
    inner = spy.evaluate

    def all_nan(population, settings, optimizer=None):
        result = inner(population, settings, optimizer)
        if len(spy.returns) >= 2:
            result.returns[:] = float("nan")
        return result

    trainer.evaluator.evaluate = all_nan  # type: ignore[method-assign]
    try:
        trainer.run()
        outcome.check(False, "all-NaN generation: the run did not stop")
    except Exception as err:  # noqa: BLE001
        message = str(err)
        intact = "checkpoint, of generation 1, is intact" in message
        outcome.check("NaN" in message and intact and "--resume" in message,
                      f"all-NaN generation: {type(err).__name__}: {message}")
        outcome.details["all_nan"] = message
    return outcome
