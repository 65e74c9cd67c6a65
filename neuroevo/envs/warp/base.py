"""Batched MuJoCo envs on MuJoCo Warp: N worlds in one ``mujoco_warp`` Data, everything on the device.

The physics of all N worlds advances in one batched call per physics step (``mujoco_warp.step``); the
task code (observation, every reward term, termination, reset noise) is the ``mujoco`` backend's own
(:mod:`neuroevo.envs.mujoco`), run on torch tensors that share memory with the warp arrays
(``wp.to_torch``): no copy of the state to the host per step. Resets of selected worlds run on the
device too (``mujoco_warp.reset_data`` with a per-world mask, then the start states written in place).
On a CUDA device the ``frame_skip`` physics steps of an env step are captured once as a CUDA graph and
replayed with one launch, ordered on torch's current stream with the torch work around it.

Autoreset follows gymnasium's ``AutoresetMode.DISABLED``, as in the ``mujoco`` backend: after
terminated or truncated a world returns its last observation, reward 0 and the same flags until
``reset(options={"reset_mask": mask})``. All worlds share the batched physics call, so a finished
world is stepped with the others, and its state (qpos, qvel, act) is put back afterwards: it stays
frozen. Bad input is handled as the ``mujoco`` backend does: a non-finite action entry is replaced by
0 and counted; a world whose state becomes non-finite terminates with reward NaN (``diverged``).

Where it differs from the ``mujoco`` backend (and from gymnasium):

- MuJoCo Warp computes in float32 (MuJoCo in float64) and its solvers differ in detail, so trajectories
  drift apart over time as any two floating-point implementations of contact dynamics do; the task
  math runs in ``dtype`` (float32 by default) on the float32 state.
- Humanoid-v5's model asks for the PGS solver, which MuJoCo Warp does not implement; that task switches
  to Newton (:attr:`WarpVectorEnv.solver`).
- MuJoCo answers a bad acceleration with a warning and a reset of that env's state; MuJoCo Warp has no
  such check, so a divergence is seen as a non-finite state only.
- Contacts and constraint rows live in fixed-size buffers (``nconmax``, ``njmax`` per world, MuJoCo
  Warp's defaults unless given). A world that outgrows them loses contacts for that step; such steps
  are counted (``problem_counts()["buffer_overflows"]``, ``info["buffer_overflow"]``).
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import torch

from neuroevo.envs.mujoco.base import ASSETS, MujocoVectorEnv, import_mujoco
from neuroevo.seeding import hash_uniform

INSTALL_HINT = "the warp backend needs MuJoCo Warp: pip install 'neuroevo[warp]'"

#: ``problem_counts()`` keys, in the order of the counter tensor
PROBLEMS = ("nonfinite_actions", "diverged", "buffer_overflows")


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


class WarpVectorEnv(MujocoVectorEnv):
    """Base of the MuJoCo Warp tasks. A task is the ``mujoco`` backend's task class with this engine
    under it (``class Hopper(planar.Hopper, WarpVectorEnv)``): the class attributes and the three
    functions ``initial_state``, ``observe`` and ``reward`` come from the task, ``reset`` and ``step``
    from here.

    Args:
        num_envs: N, the worlds.
        device: ``"cpu"`` (warp's CPU device: slow, for tests) or a CUDA device; the physics and every
            returned tensor live there.
        dtype: float dtype of the task math and of the returned observations and rewards.
        nconmax, njmax: contacts and constraint rows allocated per world (MuJoCo Warp's defaults if None).
        graph: replay the physics of a step as a captured CUDA graph (default: on CUDA devices; the CPU
            never does).

    Shapes (N = ``num_envs``): obs [N, obs_dim], reward / terminated / truncated [N]; ``info`` holds
    ``reward_terms`` (gymnasium's step ``info`` entries, each [N]), ``nonfinite_actions``, ``diverged``
    and ``buffer_overflow`` ([N] bool), all on the device.
    """

    #: MuJoCo solver the model is switched to ("newton" or "cg"), None to keep the model file's
    solver: str | None = None
    #: buffer overflow bits of ``Data.overflow`` that count (the solver's iteration limits do not)
    _overflow_bits = ("NEFC", "NJMAX_NNZ", "BROADPHASE", "NARROWPHASE", "CCD")

    def __init__(self, num_envs: int, device=None, dtype=torch.float32, nconmax: int | None = None,
                 njmax: int | None = None, graph: bool | None = None):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self._wp, self._mjw = wp, mjw = import_warp()
        self.num_envs = int(num_envs)
        self.device = _warp_capable(torch.device(device if device is not None else "cpu"))
        self.dtype = dtype
        self.model = self.load_model()
        self.dt = self.model.opt.timestep * self.frame_skip
        self._wp_device = wp.device_from_torch(self.device)
        with wp.ScopedDevice(self._wp_device):
            self._m = mjw.put_model(self.model)
            # overflows are counted per world (problem_counts), not printed by every world from inside the kernels
            self._m.opt.warn_overflow = 0
            self._d = mjw.make_data(self.model, nworld=self.num_envs, nconmax=nconmax, njmax=njmax)
        d = self._d
        self._fields = tuple(dict.fromkeys(("qpos", "qvel", *self.fields)))
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
        # float64 like the mujoco backend's start states, cast to float32 when written into the worlds
        self.init_qpos = torch.as_tensor(self.model.qpos0, dtype=torch.float64, device=self.device)
        self.init_qvel = torch.zeros(self.model.nv, dtype=torch.float64, device=self.device)
        self._constants: dict[str, torch.Tensor] = {}
        self._post_constraint = not {"cfrc_ext", "cfrc_int", "cacc"}.isdisjoint(self._fields)
        n = self.num_envs
        self._running = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._terminated = torch.zeros_like(self._running)
        self._truncated = torch.zeros_like(self._running)
        self._elapsed = torch.zeros(n, dtype=torch.int64, device=self.device)
        self._obs = torch.zeros(n, self.obs_dim_, dtype=dtype, device=self.device)
        self._counts = torch.zeros(len(PROBLEMS), dtype=torch.int64, device=self.device)
        self._init_seeds(self.device)
        low, high = self.model.actuator_ctrlrange.copy().astype(np.float32).T
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim_,), dtype=np.float64)
        self._init_spaces(obs_space, gym.spaces.Box(low=low, high=high, dtype=np.float32))
        self._stream = None
        with self._on_stream():
            self._physics()  # compiles and loads the kernels now: not inside the first step, nor inside a capture
        use_graph = self.device.type == "cuda" if graph is None else graph and self.device.type == "cuda"
        self._graph = self._capture() if use_graph else None

    def load_model(self):
        """The task's ``MjModel`` (gymnasium's model file, with :attr:`solver` applied), before it is put on
        the device."""
        mujoco = import_mujoco()
        model = mujoco.MjModel.from_xml_path(str(ASSETS / self.xml))
        if self.solver is not None:
            model.opt.solver = getattr(mujoco.mjtSolver, f"mjSOL_{self.solver.upper()}")
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
        for _ in range(self.frame_skip):
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

    def constant(self, name: str) -> torch.Tensor:
        """The model constant ``model.<name>`` as a tensor of ``dtype`` on the device (made once)."""
        if name not in self._constants:
            array = np.array(getattr(self.model, name))
            self._constants[name] = torch.as_tensor(array, dtype=self.dtype, device=self.device)
        return self._constants[name]

    # -- gymnasium's vector API --------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        mask, state = self._reset_bookkeeping(seed, options)
        n, device = self.num_envs, self.device
        if mask is None:
            mask = torch.ones(n, dtype=torch.bool, device=device)
        else:
            mask = torch.as_tensor(mask).to(device=device, dtype=torch.bool).reshape(n)
        if state is not None:
            qpos, qvel = (
                torch.as_tensor(state[k]).detach().to(device=device, dtype=torch.float64).reshape(n, -1)
                for k in ("qpos", "qvel")
            )
        else:
            u = hash_uniform(self._seeds, self._resets, self.num_reset_uniforms, dtype=torch.float64)
            qpos, qvel = self.initial_state(u)
        with self._on_stream():
            self._mjw.reset_data(self._m, self._d, reset=self._wp.from_torch(mask.contiguous()))
        for view, start in ((self._views["qpos"], qpos), (self._views["qvel"], qvel)):
            view.copy_(torch.where(mask[:, None], start.to(view.dtype), view))
        with self._on_stream():
            # every world: the others' derived quantities are recomputed from their unchanged state
            self._mjw.forward(self._m, self._d)
        self._obs = torch.where(mask[:, None], self.observe(self._now()).to(self.dtype), self._obs)
        self._running = self._running | mask
        self._terminated = self._terminated & ~mask
        self._truncated = self._truncated & ~mask
        self._elapsed = torch.where(mask, 0, self._elapsed)
        return self._obs, {}

    def step(self, actions):
        if not self._reset_once:
            raise RuntimeError(f"{self.spec_id}: call reset() before step()")
        actions = torch.as_tensor(actions, device=self.device)
        self.check_actions(actions)
        action = actions.to(self.dtype)
        finite = torch.isfinite(action)
        nonfinite = ~finite.all(dim=1)
        action = torch.where(finite, action, 0.0)  # MuJoCo Warp must never see NaN controls
        running = self._running
        before = {f: self._views[f].to(self.dtype, copy=True) for f in self.before_fields}
        pairs = zip(self._state, self._state_fallback, strict=True)
        held = [torch.where(torch.isfinite(s), s, fallback) for s, fallback in pairs]
        self._ctrl.copy_(torch.where(running[:, None], action, 0.0))
        self.step_physics()

        now = self._now()
        diverged = running & ~(torch.isfinite(now["qpos"]).all(dim=1) & torch.isfinite(now["qvel"]).all(dim=1))
        overflow = running & ((self._overflow & self._overflow_mask) != 0)
        reward, terminated, terms = self.reward(before, now, action)
        obs = self.observe(now).to(self.dtype)
        # Finished worlds stay where they were; one that diverged now goes back to its last finite state.
        hold = (diverged | ~running)[:, None]
        for s, old in zip(self._state, held, strict=True):
            s.copy_(torch.where(hold, old, s))
        reward = torch.where(diverged, torch.nan, torch.where(running, reward, 0.0)).to(self.dtype)
        terms = {k: torch.where(running.reshape(-1, *[1] * (v.ndim - 1)), v, 0.0) for k, v in terms.items()}
        self._elapsed = self._elapsed + running
        self._terminated = self._terminated | (running & (terminated | diverged))
        self._truncated = self._truncated | (running & (self._elapsed >= self.max_episode_steps))
        self._obs = torch.where(running[:, None], obs, self._obs)
        self._running = running & ~(self._terminated | self._truncated)
        self._counts += torch.stack([(nonfinite & running).sum(), diverged.sum(), overflow.sum()])
        info = {"reward_terms": terms, "nonfinite_actions": nonfinite, "diverged": diverged}
        info["buffer_overflow"] = overflow
        return self._obs, reward, self._terminated, self._truncated, info

    def problem_counts(self) -> dict[str, int]:
        """Env steps whose action had a NaN/inf entry, episodes ended by a non-finite state, and env steps
        in which a world outgrew its contact or constraint buffers (one host sync)."""
        return dict(zip(PROBLEMS, self._counts.tolist(), strict=True))

    def close(self) -> None:
        self._graph = None


def _warp_capable(device: torch.device) -> torch.device:
    """``device`` with an explicit CUDA index; a one-line error for a device warp cannot run on."""
    if device.type == "cuda":
        return torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
    if device.type != "cpu":
        raise ValueError(f"the warp backend runs on the CPU or a CUDA device, not {str(device)!r}")
    return device


__all__ = ["INSTALL_HINT", "PROBLEMS", "WarpVectorEnv", "import_warp"]
