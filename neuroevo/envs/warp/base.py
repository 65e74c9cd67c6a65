"""The warp engine: N MuJoCo Warp worlds of one task in one ``mujoco_warp`` Data, everything on the device.

A batched env is a task composed into an engine, as for the ``mujoco`` backend: ``WarpVectorEnv(Hopper, n)``
runs the very task class (:class:`~neuroevo.envs.mujoco.task.MujocoTask`: model file, frame skip, observation,
every reward term, termination, reset noise) that ``MujocoVectorEnv(Hopper, n)`` runs on CPU threads; the task
is made with torch tensors on the device as its array type. ``WARP_ENVS`` holds one
``functools.partial(WarpVectorEnv, task)`` per gymnasium id.

The physics of all N worlds advances in one batched call per physics step (``mujoco_warp.step``); the task
code runs on torch tensors that share memory with the warp arrays (``wp.to_torch``): no copy of the state to
the host per step. Resets of selected worlds run on the device too (``mujoco_warp.reset_data`` with a per-world
mask, then the start states written in place). On a CUDA device the ``frame_skip`` physics steps of an env step
are captured once as a CUDA graph and replayed with one launch, ordered on torch's current stream with the
torch work around it.

The episodes follow the contract of :mod:`neuroevo.envs.base` through its :class:`EpisodeState`, on the
device: no autoreset; a finished world returns its last observation, reward 0 and the same flags until
``reset(options={"reset_mask": mask})``. All worlds share the batched physics call, so a finished world is
stepped with the others, and its state (qpos, qvel, act) is put back afterwards. Bad input is handled as the
``mujoco`` engine does: a non-finite action entry is replaced by 0 and counted; a world whose state becomes
non-finite terminates with reward NaN (``diverged``) and is put back at its last finite state.

Where it differs from the ``mujoco`` engine (and from gymnasium):

- MuJoCo Warp computes in float32 (MuJoCo in float64) and its solvers differ in detail, so trajectories
  drift apart over time as any two floating-point implementations of contact dynamics do; the task
  math runs in ``dtype`` (float32 by default) on the float32 state.
- Humanoid-v5's model asks for the PGS solver, which MuJoCo Warp does not implement; this engine switches
  it to Newton (:data:`SOLVERS`).
- MuJoCo answers a bad acceleration with a warning and a reset of that env's state; MuJoCo Warp has no
  such check, so a divergence is seen as a non-finite state only.
- Contacts and constraint rows live in fixed-size buffers (``nconmax``, ``njmax`` per world, MuJoCo
  Warp's defaults unless given). A world that outgrows them loses contacts for that step; such steps
  are counted (``problem_counts()["buffer_overflows"]``, ``info["buffer_overflow"]``).
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import gymnasium as gym
import torch

from neuroevo.envs.base import EpisodeState, VectorEnv, as_mask
from neuroevo.envs.mujoco.task import POST_CONSTRAINT_FIELDS, Array, MujocoTask, import_mujoco, load_model
from neuroevo.seeding import hash_uniform

INSTALL_HINT = "the warp backend needs MuJoCo Warp: pip install 'neuroevo[warp]'"

#: ``problem_counts()`` keys, in the order of the counter tensor
PROBLEMS = ("nonfinite_actions", "diverged", "buffer_overflows")

#: gymnasium id -> the MuJoCo solver this engine switches the task's model to ("newton" or "cg"). Humanoid-v5's
#: model file asks for PGS, which MuJoCo Warp does not implement ("mjSOL_PGS is unsupported"); Newton solves the
#: same constraint problem, to its tolerance and iteration limit (50 here), so the dynamics agree with the
#: ``mujoco`` engine's up to the solvers' convergence, not bit for bit: a deviation from gymnasium's Humanoid-v5,
#: stated in the README.
SOLVERS = {"Humanoid-v5": "newton"}


def import_warp():
    """``(warp, mujoco_warp)``, or a one-line ``ValueError`` saying how to install them.

    Warp's info messages (its banner and a line per compiled kernel module) are turned down to warnings
    while the log level is warp's default; set ``warp.config.log_level`` to see them."""
    try:
        import warp
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    if warp.config.log_level == warp.LOG_INFO:
        warp.config.log_level = warp.LOG_WARNING
    warp.init()
    try:
        import mujoco_warp
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return warp, mujoco_warp


class WarpVectorEnv(VectorEnv):
    """N MuJoCo Warp worlds of ``task`` (see the module's docstring).

    Args:
        task: the task class (:class:`MujocoTask` subclass); the engine loads its model (:meth:`load_model`) and
            makes it as ``task(model, device=device, dtype=dtype)``: tensors on the device. The made task is
            ``env.task``.
        num_envs: N, the worlds.
        device: ``"cpu"`` (warp's CPU device: slow, for tests) or a CUDA device; the physics and every
            returned tensor live there.
        dtype: float dtype of the task math and of the returned observations and rewards.
        nconmax, njmax: contacts and constraint rows allocated per world (MuJoCo Warp's defaults if None).
        graph: replay the physics of a step as a captured CUDA graph (default: on CUDA devices; the CPU
            never does).
        max_episode_steps: the time limit (None: the task's registered one).

    Shapes (N = ``num_envs``): obs [N, obs_dim], reward / terminated / truncated [N]; ``info`` holds
    ``reward_terms`` (gymnasium's step ``info`` entries, each [N, ...]), ``nonfinite_actions``, ``diverged``
    and ``buffer_overflow`` ([N] bool), all on the device.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    episodes: EpisodeState  # made by the constructor
    #: buffer overflow bits of ``Data.overflow`` that count (the solver's iteration limits do not)
    _overflow_bits = ("NEFC", "NJMAX_NNZ", "BROADPHASE", "NARROWPHASE", "CCD")

    def __init__(self, task: type[MujocoTask], num_envs: int, device=None, dtype=torch.float32,
                 nconmax: int | None = None, njmax: int | None = None, graph: bool | None = None,
                 max_episode_steps: int | None = None):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self._wp, self._mjw = wp, mjw = import_warp()
        self.num_envs = int(num_envs)
        self.device = _warp_capable(torch.device(device if device is not None else "cpu"))
        self.dtype = dtype
        self.model = self.load_model(task)
        self.task = task(self.model, device=self.device, dtype=dtype)
        self.spec_id = self.task.spec_id
        self._wp_device = wp.device_from_torch(self.device)
        with wp.ScopedDevice(self._wp_device):
            self._m = mjw.put_model(self.model)
            # overflows are counted per world (problem_counts), not printed by every world from inside the kernels
            self._m.opt.warn_overflow = 0
            self._d = mjw.make_data(self.model, nworld=self.num_envs, nconmax=nconmax, njmax=njmax)
        d = self._d
        self._fields = tuple(dict.fromkeys(("qpos", "qvel", *self.task.fields)))
        self._views = {f: wp.to_torch(getattr(d, f)) for f in self._fields}  # [N, ...] float32, shared memory
        self._ctrl = wp.to_torch(d.ctrl)
        self._overflow = wp.to_torch(d.overflow)
        self._overflow_mask = int(sum(getattr(mjw.OverflowType, bit) for bit in self._overflow_bits))
        # The state a finished world is held at, and what replaces it if it is not finite (a diverged world
        # must not make every later physics step run the solver to its iteration limit).
        state = [d.qpos, d.qvel] + ([d.act] if self.model.na else [])
        self._state = [wp.to_torch(a) for a in state]
        self._state_fallback = [torch.as_tensor(self.model.qpos0, dtype=torch.float32, device=self.device)]
        self._state_fallback += [torch.zeros(s.shape[1], device=self.device) for s in self._state[1:]]
        self._post_constraint = not POST_CONSTRAINT_FIELDS.isdisjoint(self._fields)
        self.max_episode_steps = self.task.max_episode_steps if max_episode_steps is None else max_episode_steps
        self.episodes = EpisodeState(self.num_envs, self.task.obs_dim, self.max_episode_steps, self.device, dtype)
        self._counts = torch.zeros(len(PROBLEMS), dtype=torch.int64, device=self.device)
        self._init_seeds(self.device)
        self._init_spaces(*self.task.spaces())
        self._stream: tuple[int, Any] | None = None  # (torch's CUDA stream handle, its warp stream)
        with self._on_stream():
            self._physics()  # compiles and loads the kernels now: not inside the first step, nor inside a capture
        use_graph = self.device.type == "cuda" if graph is None else graph and self.device.type == "cuda"
        self._graph = self._capture() if use_graph else None

    def load_model(self, task: type[MujocoTask]):
        """The task's ``MjModel`` (gymnasium's model file, with the solver of :data:`SOLVERS` applied), before
        it is put on the device."""
        model = load_model(task.xml)
        solver = SOLVERS.get(task.spec_id)
        if solver is not None:
            model.opt.solver = getattr(import_mujoco().mjtSolver, f"mjSOL_{solver.upper()}")
        return model

    # -- physics on the device -------------------------------------------------------------------
    def _torch_stream(self):
        """Torch's current CUDA stream on the device as a warp stream (wrapped once per torch stream)."""
        stream = torch.cuda.current_stream(self.device)
        if self._stream is None or self._stream[0] != stream.cuda_stream:
            self._stream = (stream.cuda_stream, self._wp.stream_from_torch(stream))
        return self._stream[1]

    def _on_stream(self):
        """Warp calls on the device, ordered with torch's work: on CUDA, on torch's current stream."""
        if self.device.type == "cuda":
            return self._wp.ScopedStream(self._torch_stream())
        return self._wp.ScopedDevice(self._wp_device)

    def _physics(self) -> None:
        """One env step of physics for every world: ``frame_skip`` MuJoCo Warp steps (then the force
        quantities ``cfrc_ext`` etc. for the tasks that read them, as gymnasium calls
        ``mj_rnePostConstraint``), with the overflow flags cleared first so they describe this step."""
        self._d.overflow.zero_()
        for _ in range(self.task.frame_skip):
            self._mjw.step(self._m, self._d)
        if self._post_constraint:
            self._mjw.rne_postconstraint(self._m, self._d)

    def _capture(self):
        """The CUDA graph of :meth:`_physics`, or None (with a warning) where capture fails."""
        wp = self._wp
        try:
            with wp.ScopedDevice(self._wp_device), wp.ScopedCapture() as capture:
                self._physics()
        except Exception as error:  # noqa: BLE001 -- any capture failure leaves the uncaptured path, which works
            warnings.warn(f"{self.spec_id}: CUDA graph capture failed ({error}); stepping without a graph",
                          stacklevel=3)
            return None
        return capture.graph

    @property
    def graph_captured(self) -> bool:
        """Whether a step's physics replays as a captured CUDA graph."""
        return self._graph is not None

    def step_physics(self) -> None:
        """The physics of one env step for every world, and nothing else: no controls written, no
        observation, reward or bookkeeping (what ``step`` runs between them; benchmarks time it alone)."""
        wp = self._wp
        if self._graph is not None:
            wp.capture_launch(self._graph, stream=self._torch_stream())
        else:
            with self._on_stream():
                self._physics()

    def _now(self) -> dict[str, torch.Tensor]:
        """The task's fields as [N, ...] tensors of ``dtype`` (the live views themselves for float32)."""
        return {f: v if v.dtype == self.dtype else v.to(self.dtype) for f, v in self._views.items()}

    # -- gymnasium's vector API --------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        mask, state = self._reset_bookkeeping(seed, options)
        n, device = self.num_envs, self.device
        mask = as_mask(mask, n, device)
        if state is not None:
            qpos, qvel = (
                torch.as_tensor(state[k]).detach().to(device=device, dtype=torch.float64).reshape(n, -1)
                for k in ("qpos", "qvel")
            )
        else:
            u = hash_uniform(self._seeds, self._resets, self.task.num_reset_uniforms, dtype=torch.float64)
            qpos, qvel = map(_tensor, self.task.initial_state(u))
        every = torch.ones(n, dtype=torch.bool, device=device) if mask is None else mask
        with self._on_stream():
            self._mjw.reset_data(self._m, self._d, reset=self._wp.from_torch(every.contiguous()))
        for view, start in ((self._views["qpos"], qpos), (self._views["qvel"], qvel)):
            view.copy_(torch.where(every[:, None], start.to(view.dtype), view))
        # MuJoCo's mj_resetData zeroes the force quantities of mj_rnePostConstraint, which mj_forward does not
        # compute; MuJoCo Warp's reset_data leaves the last step's there, so a new episode's first observation
        # would carry the old contact forces (Ant, Humanoid).
        for name in POST_CONSTRAINT_FIELDS & self._views.keys():
            view = self._views[name]
            view.copy_(torch.where(every.reshape(-1, *[1] * (view.ndim - 1)), 0.0, view))
        with self._on_stream():
            # every world: the others' derived quantities are recomputed from their unchanged state
            self._mjw.forward(self._m, self._d)
        return self.episodes.reset(mask, _tensor(self.task.observe(self._now()))), {}

    def step(self, actions):
        if not self._reset_once:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions, device=self.device)
        self.check_actions(actions)
        action = actions.to(self.dtype)
        finite = torch.isfinite(action)
        nonfinite = ~finite.all(dim=1)
        action = torch.where(finite, action, 0.0)  # MuJoCo Warp must never see NaN controls
        running = self.episodes.running
        before = {f: self._views[f].to(self.dtype, copy=True) for f in self.task.before_fields}
        pairs = zip(self._state, self._state_fallback, strict=True)
        held = [torch.where(torch.isfinite(s), s, fallback) for s, fallback in pairs]
        self._ctrl.copy_(torch.where(running[:, None], action, 0.0))
        self.step_physics()

        now = self._now()
        diverged = running & ~(torch.isfinite(now["qpos"]).all(dim=1) & torch.isfinite(now["qvel"]).all(dim=1))
        overflow = running & ((self._overflow & self._overflow_mask) != 0)
        reward, terminated, terms = self.task.reward(before, now, action)
        reward, terminated, obs = _tensor(reward), _tensor(terminated), _tensor(self.task.observe(now))
        # Finished worlds stay where they were; one that diverged now goes back to its last finite state.
        hold = (diverged | ~running)[:, None]
        for s, old in zip(self._state, held, strict=True):
            s.copy_(torch.where(hold, old, s))
        obs, reward, terminated, truncated = self.episodes.step(obs, reward, terminated, diverged=diverged)
        terms = {k: torch.where(running.reshape(-1, *[1] * (v.ndim - 1)), _tensor(v), 0.0) for k, v in terms.items()}
        self._counts += torch.stack([(nonfinite & running).sum(), diverged.sum(), overflow.sum()])
        info = {"reward_terms": terms, "nonfinite_actions": nonfinite, "diverged": diverged}
        info["buffer_overflow"] = overflow
        return obs, reward, terminated, truncated, info

    def problem_counts(self) -> dict[str, int]:
        """Env steps whose action had a NaN/inf entry, episodes ended by a non-finite state, and env steps
        in which a world outgrew its contact or constraint buffers (one host sync)."""
        return dict(zip(PROBLEMS, self._counts.tolist(), strict=True))

    def close(self) -> None:
        self._graph = None


def _tensor(x: Array) -> torch.Tensor:
    """``x`` as what it is here: the task math runs on tensors in this engine (a type, not a conversion)."""
    return cast(torch.Tensor, x)


def _warp_capable(device: torch.device) -> torch.device:
    """``device`` with an explicit CUDA index; a one-line error for a device warp cannot run on."""
    if device.type == "cuda":
        return torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
    if device.type != "cpu":
        raise ValueError(f"the warp backend runs on the CPU or a CUDA device, not {str(device)!r}")
    return device


__all__ = ["INSTALL_HINT", "PROBLEMS", "SOLVERS", "WarpVectorEnv", "import_warp"]
