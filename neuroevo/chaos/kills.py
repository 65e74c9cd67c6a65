"""Attack 1: the trainer SIGKILLed at random moments, and inside its atomic writes (between writing a file and
renaming it into place, through :class:`~neuroevo.faults.PauseGate`), again and again over one run; each time
``neuroevo train --resume`` must start, and the run that finally completes must equal an uninterrupted run of
the same seed bit for bit (metrics rows but wall times, last checkpoint, best policy)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from neuroevo.chaos import Outcome, Settings
from neuroevo.faults import (
    Child,
    ChildExited,
    PauseGate,
    differences,
    generations_logged,
    neuroevo_command,
    run_record,
    spawn,
    wait_until,
)

#: the runs attacked: (name, neuroevo train arguments but --out)
TASKS = {
    "CartPole-v1": ("--env", "CartPole-v1", "--algo", "es", "--seed", "3", "--set", "es.popsize=16",
                    "--set", "run.eval_every=2", "--set", "run.eval_episodes=3", "--set", "policy.kind='mlp'",
                    "--set", "policy.hidden=[8]", "--quiet"),
    "Hopper-v5": ("--env", "Hopper-v5", "--algo", "ars", "--seed", "3", "--set", "ars.popsize=8",
                  "--set", "ars.top_directions=4", "--set", "env.max_steps=100", "--set", "run.eval_episodes=2",
                  "--set", "run.eval_every=2", "--set", "env.num_threads=1", "--quiet"),
}
#: (generations, random kills, kills inside a write) per task, full / quick
FULL = {"CartPole-v1": (80, 14, 10), "Hopper-v5": (30, 8, 6)}
QUICK = {"CartPole-v1": (6, 0, 1)}


def _command(task: str, generations: int, out: Path) -> list[str]:
    return neuroevo_command("train", *TASKS[task], "--generations", str(generations), "--out", str(out))


def _training(child) -> None:
    """Wait until the run has started training (its first line is out), or has exited."""
    wait_until(lambda: "training " in child.output() or "resuming " in child.output(), 300, child=child,
               what="the run starting")


def _kill(settings: Settings, child: Child, kind: str | None, gate: PauseGate | None, run: Path, generations: int,
          span: float, kills_left: int = 0) -> tuple[str, int] | None:
    """Kill ``child`` at a random moment (``kind`` "random") or inside a write after letting 0 to 6 through
    ("write"); (what, generations logged) of the kill, None if the run ended first."""
    if kind == "random":  # at a random generation still to come, a random moment into it
        _training(child)
        logged = generations_logged(run)  # spread the kills left over the generations left
        target = logged + settings.rng.randint(0, max(0, (generations - 1 - logged) // (kills_left + 1)))
        try:
            wait_until(lambda: generations_logged(run) >= target, 900, child=child, what="the kill's generation")
        except ChildExited:
            return None
        time.sleep(settings.rng.uniform(0.0, span / generations))
        if child.alive():
            child.kill()
            return ("random", generations_logged(run))
    elif kind == "write" and gate is not None:
        try:
            for _ in range(settings.rng.randint(0, 6)):
                gate.release(gate.wait(300, child))
            marker = gate.wait(300, child)
        except (ChildExited, TimeoutError):  # the run ended before that many writes: no kill this time
            return None
        what = marker.read_text().rsplit("/", 1)[-1] if marker.exists() else "?"
        child.kill()
        return (f"write:{what}", generations_logged(run))
    return None


def attack(settings: Settings) -> list[Outcome]:
    plan = QUICK if settings.quick else FULL
    return [_attack_task(settings, task, *plan[task]) for task in plan]


def _attack_task(settings: Settings, task: str, generations: int, random_kills: int, write_kills: int) -> Outcome:
    work = settings.work / task
    shutil.rmtree(work, ignore_errors=True)
    outcome = Outcome(f"SIGKILL at random moments and inside checkpoint writes, {task}",
                      command=" ".join(["neuroevo", *_command(task, generations, Path("RUN"))[3:]]))
    straight = work / "straight"
    with spawn(_command(task, generations, straight), log=work / "straight.log") as child:
        _training(child)
        start = time.monotonic()
        if child.wait(900) != 0:
            outcome.check(False, f"the uninterrupted run failed: {child.output()[-500:]}")
            return outcome
    span = time.monotonic() - start  # the training part of the run: kill moments are drawn within it

    run = work / "killed"
    kinds = ["random"] * random_kills + ["write"] * write_kills
    settings.rng.shuffle(kinds)
    first, resumes, kills_done = True, 0, []
    while True:
        kind = kinds.pop() if kinds else None
        args = _command(task, generations, run) if first else neuroevo_command("train", "--resume", str(run), "--quiet")
        gate = PauseGate(work / f"pauses{resumes}") if kind == "write" else None
        child = spawn(args, log=work / f"run{resumes}.log", env=gate.env() if gate else None)
        resumes += 1
        with child:
            killed = _kill(settings, child, kind, gate, run, generations, span, len(kinds))
            if killed is not None:
                kills_done.append(killed)
            status = child.wait(900)
        if status not in (0, -9):
            outcome.check(False, f"a start after {len(kills_done)} kills exited with {status}: "
                          f"{child.output()[-400:]}")
            return outcome
        if not first and status != -9 and "resuming" not in child.output():
            outcome.check(False, f"--resume did not say where it resumed: {child.output()[-300:]}")
        first = first and not run.joinpath("config.json").exists()
        if status == 0:  # finished (any kills left could not land)
            break
    diffs = differences(run_record(straight), run_record(run))
    for kind, at in kills_done:
        outcome.check(not diffs, f"{kind} kill at generation {at}: the final record differs: {diffs[:3]}")
    outcome.details = {"generations": generations, "kills": kills_done, "starts": resumes,
                       "identical": not diffs}
    return outcome
