"""Part 1 of the GPU check: the device computes what the CPU computes.

- ``torch_envs``: each torch-native classic-control env, the same 128 linear members (N(0, 0.1^2) parameters)
  from the same episode seeds, evaluated on the device and on the CPU over 50-step episodes: member by member the
  returns agree to rtol 1e-3 (and atol 1e-3; whole trajectories of chaotic tasks cannot agree bit for bit, and a
  discrete action whose logits tie to float rounding may flip: ``mismatched`` counts the members outside).
- ``warp``: the warp backend on the device, with and without its CUDA graph, against the ``mujoco`` backend on the
  CPU, as ``tests/envs/test_warp.py`` checks it on warp's CPU device, with its members and seeds (3 linear members
  N(0, 0.1^2) from ``--seed``, episode seeds from ``--seed`` + 7, 25-step episodes): equal episode lengths, and
  returns within rtol 1e-3, atol 1e-3 per step. As there, Humanoid runs Newton on both sides and Ant elliptic
  friction cones on both (the engines' documented differences, docs/guides/mujoco.md): the check is of the
  backend, not of MuJoCo Warp. The members and seeds are the tests' because float32 and float64 trajectories of
  contact dynamics part early for some members: on warp's CPU device, 10 of 32 HalfCheetah members (other seeds)
  are outside the tolerance after 25 steps, and 1 of 16 after 10.
- ``tell``: one ``ask``/``tell`` of ES, GA and ARS made twice from the same center and seed, on the device and on
  the CPU, told the same fitness: the populations asked and every state tensor after the update (center, Adam's
  moments, the GA's elites and parents) agree within 1e-6.

Without a CUDA device the device is the CPU: every comparison still runs (the code path is exercised) and says
"no CUDA device: compared cpu with cpu".
"""

from __future__ import annotations

from typing import Any

import mujoco
import torch

from neuroevo.algorithms import make_optimizer
from neuroevo.bench.budget import Ladder, PartContext
from neuroevo.envs import MUJOCO_ENVS, TORCH_ENVS, make_env
from neuroevo.envs.mujoco.spatial import Ant
from neuroevo.policies import make_policy, output_dim
from neuroevo.rollout import evaluate

RTOL = 1e-3  # returns, device against the CPU
TELL_ATOL = 1e-6  # optimizer state after one tell
SCALE = 0.1  # members' parameters ~ N(0, SCALE^2): actions that vary without saturating every step
TELL_ALGOS = ("es", "ga", "ars")
WARP_TASKS = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5",
              "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5")  # Parts 4 and 5 use the first two
WARP_EPISODE_SEED = 7  # added to --seed: the episode seeds of tests/envs/test_warp.py
FULL: dict[str, Any] = {"popsize": 128, "steps": 50, "warp_popsize": 3, "warp_steps": 25, "tell_dim": 1000,
                        "tell_popsize": 64}
QUICK: dict[str, Any] = {"popsize": 8, "steps": 20, "warp_popsize": 2, "warp_steps": 4, "tell_dim": 20,
                         "tell_popsize": 32, "warp_tasks": ("Hopper-v5",)}


def _members(env_id: str, popsize: int, seed: int) -> tuple[Any, torch.Tensor]:
    probe = make_env(env_id, 1, device="cpu")
    policy = make_policy("linear", probe.obs_dim, output_dim(probe.single_action_space))
    probe.close()
    generator = torch.Generator().manual_seed(seed)
    return policy, SCALE * torch.randn(popsize, policy.num_params, generator=generator)


def compare_returns(got: torch.Tensor, expected: torch.Tensor, atol: float) -> dict[str, Any]:
    """How far ``got`` [P] is from ``expected`` [P] (both moved to the CPU), and whether every member is within
    rtol RTOL, atol ``atol``."""
    got, expected = got.double().cpu(), expected.double().cpu()
    gap = (got - expected).abs()
    within = gap <= atol + RTOL * expected.abs()
    return {
        "max_abs_diff": float(gap.max()),
        "max_rel_diff": float((gap / expected.abs().clamp_min(1e-12)).max()),
        "mismatched": int((~within).sum()),
        "passed": bool(within.all()),
    }


def torch_env_row(env_id: str, device: torch.device, popsize: int, steps: int, seed: int) -> dict[str, Any]:
    """One torch-native env: returns on ``device`` against the CPU's, same members and episode seeds."""
    policy, params = _members(env_id, popsize, seed)
    got, expected = (
        evaluate(policy, params.to(where), make_env(env_id, popsize, device=where, backend="torch"), max_steps=steps,
                 seed=seed)
        for where in (device, torch.device("cpu"))
    )
    row = {"env_id": env_id, "device": str(device), "popsize": popsize, "steps": steps,
           **compare_returns(got.returns, expected.returns, atol=RTOL)}
    row["lengths_equal"] = bool(torch.equal(got.episode_lengths.cpu(), expected.episode_lengths))
    return row


def _warp_env(env_id: str, popsize: int, device: torch.device, graph: bool):
    """The warp env and its ``mujoco`` twin, with the engines' documented differences set aside (see above)."""
    from neuroevo.envs.warp import WARP_ENVS, WarpVectorEnv

    if env_id == "Ant-v5":
        class EllipticAnt(WarpVectorEnv):
            def load_model(self, task):
                model = super().load_model(task)
                model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
                return model

        warp_env: WarpVectorEnv = EllipticAnt(Ant, popsize, device=device, graph=graph)
    else:
        warp_env = WARP_ENVS[env_id](popsize, device=device, graph=graph)
    twin = MUJOCO_ENVS[env_id](popsize, device="cpu")
    if env_id == "Humanoid-v5":
        twin.model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON  # what the warp engine runs (its SOLVERS)
    if env_id == "Ant-v5":
        twin.model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    return warp_env, twin


def warp_row(env_id: str, device: torch.device, graph: bool, popsize: int, steps: int, seed: int,
             episode_seed: int) -> dict[str, Any]:
    """The warp backend on ``device`` (``graph``: replaying its CUDA graph) against the mujoco backend: members
    from ``seed``, episodes from ``episode_seed``."""
    policy, params = _members(env_id, popsize, seed)
    warp_env, twin = _warp_env(env_id, popsize, device, graph)
    try:
        got = evaluate(policy, params.to(device), warp_env, max_steps=steps, seed=episode_seed)
        expected = evaluate(policy, params, twin, max_steps=steps, seed=episode_seed)
    finally:
        warp_env.close()
        twin.close()
    lengths_equal = bool(torch.equal(got.episode_lengths.cpu(), expected.episode_lengths))
    row = {"env_id": env_id, "device": str(device), "graph": graph, "graph_captured": warp_env.graph_captured,
           "popsize": popsize, "steps": steps, **compare_returns(got.returns, expected.returns, atol=RTOL * steps)}
    row["lengths_equal"] = lengths_equal
    row["passed"] = row["passed"] and lengths_equal and (warp_env.graph_captured == graph)
    return row


def tell_row(algo: str, device: torch.device, dim: int, popsize: int, seed: int) -> dict[str, Any]:
    """One ask/tell of ``algo`` on ``device`` and on the CPU from the same center, seed and fitness."""
    generator = torch.Generator().manual_seed(seed)
    center = SCALE * torch.randn(dim, generator=generator)
    fitness = torch.randn(popsize, generator=generator)  # distinct values: no ties for ranks and selection
    on_device, on_cpu = (make_optimizer(algo, center, popsize=popsize, seed=seed, device=d) for d in (device, "cpu"))
    gaps = {"ask": float((on_device.ask().cpu() - on_cpu.ask()).abs().max())}
    on_device.tell(fitness.to(device))
    on_cpu.tell(fitness)
    state = on_device.state_dict()
    for key, value in on_cpu.state_dict().items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            gaps[key] = float((state[key].cpu() - value).abs().max())
    worst = max(gaps.values())
    return {"algo": algo, "device": str(device), "dim": dim, "popsize": popsize, "max_abs_diff": worst,
            "diffs": gaps, "passed": worst <= TELL_ATOL}


def run(ctx: PartContext) -> dict[str, Any]:
    """Part 1's figures: ``compared``, and rows of ``torch_envs``, ``warp`` and ``tell`` (each with ``passed``)."""
    sizes = QUICK if ctx.quick else FULL
    device, seed = ctx.device, ctx.seed
    ctx.figures["compared"] = f"{device} with cpu" if ctx.cuda else "cpu with cpu"
    if not ctx.cuda:
        ctx.note("no CUDA device: compared cpu with cpu")
    for algo in TELL_ALGOS:
        row = ctx.attempt(f"tell {algo}", tell_row, algo, device, sizes["tell_dim"], sizes["tell_popsize"], seed)
        if row is not None:
            ctx.record("tell", row)
    for env_id in TORCH_ENVS:
        row = ctx.attempt(f"torch env {env_id}", torch_env_row, env_id, device, sizes["popsize"], sizes["steps"], seed)
        if row is not None:
            ctx.record("torch_envs", row)
    _warp_rows(ctx, sizes)
    rows = [r for key in ("tell", "torch_envs", "warp") for r in ctx.figures.get(key, [])]
    ctx.figures["checks"], ctx.figures["passed"] = len(rows), sum(r["passed"] for r in rows)
    return ctx.figures


def _warp_rows(ctx: PartContext, sizes: dict[str, Any]) -> None:
    try:
        from neuroevo.envs.warp import import_warp

        import_warp()
    except ValueError as err:
        ctx.note(f"warp: skipped, {err}")
        return
    graphs = (True, False) if ctx.cuda else (False,)
    if not ctx.cuda:
        ctx.note("warp: the CUDA graph variant needs a CUDA device, skipped")
    tasks = sizes.get("warp_tasks", WARP_TASKS)
    ladder = Ladder(ctx, "warp tasks", exponent=0.0, label=lambda i: tasks[i - 1])
    for i in ladder.over(range(1, len(tasks) + 1)):
        env_id = tasks[i - 1]
        for graph in graphs:
            row = ctx.attempt(f"warp {env_id} graph={graph}", warp_row, env_id, ctx.device, graph,
                              sizes["warp_popsize"], sizes["warp_steps"], ctx.seed, ctx.seed + WARP_EPISODE_SEED)
            if row is not None:
                ctx.record("warp", row)


def summary(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Part 1's summary rows: checks passed of each kind, against all."""
    rows = []
    for key, what in (("tell", "ES/GA/ARS tell, atol 1e-6"), ("torch_envs", "torch envs, rtol 1e-3"),
                      ("warp", "warp vs mujoco, rtol 1e-3")):
        checks = figures.get(key, [])
        passed = sum(r["passed"] for r in checks)
        failed = [r.get("env_id", r.get("algo")) + ("" if "graph" not in r else f" graph={r['graph']}")
                  for r in checks if not r["passed"]]
        rows.append({"figure": f"{what} ({figures.get('compared', '?')})", "value": f"{passed} of {len(checks)}",
                     "target": "all", "met": bool(checks) and passed == len(checks),
                     "detail": ", ".join(failed)})
    return rows
