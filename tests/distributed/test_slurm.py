"""scripts/slurm/neuroevo.sbatch without SLURM: ``srun``, ``scontrol`` and ``hostname`` are fakes on PATH that
record what they were asked and run the commands on this machine (each SLURM "node" is one more Ray node
here). The batch shell alone gets SIGTERM, as SLURM's ``--signal=B:TERM@120`` sends it; the trap passes it
on, training writes a checkpoint and stops, the job asks to be requeued; the requeued job (on one node)
resumes, and the run ends bit for bit where an uninterrupted local run ends."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import torch

from neuroevo.cli import main
from neuroevo.faults import PauseGate, differences, generations_logged, run_record, spawn, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm" / "neuroevo.sbatch"
TRAIN = ["--env", "CartPole-v1", "--algo", "es", "--generations", "6", "--popsize", "12", "--seed", "5",
         "--device", "cpu", "--set", "env.max_steps=60", "--set", "run.shard_size=3", "--set", "run.eval_episodes=2",
         "--quiet"]

FAKE_SRUN = '''
import json, os, signal, subprocess, sys
args = sys.argv[1:]
options, nodes = [], ["?"]
while args and args[0].startswith("-"):
    option = args.pop(0)
    if option in ("-w", "--nodelist", "-N", "--nodes", "-n", "--ntasks") and "=" not in option:
        value = args.pop(0)
        option = f"{option}={value}"
    if option.startswith(("-w=", "--nodelist=")):
        nodes = option.split("=", 1)[1].split(",")
    options.append(option)
with open(os.environ["FAKE_SLURM_LOG"], "a") as log:
    log.write(json.dumps({"command": "srun", "options": options, "nodes": nodes, "args": args}) + "\\n")
# one task per node, all on this machine; srun passes SIGTERM and SIGINT on to its tasks
tasks = [subprocess.Popen(args, env={**os.environ, "SLURMD_NODENAME": node}) for node in nodes]
def forward(signum, frame):
    for task in tasks:
        task.send_signal(signum)
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
sys.exit(max(task.wait() for task in tasks))
'''

FAKE_SCONTROL = '''
import json, os, sys
with open(os.environ["FAKE_SLURM_LOG"], "a") as log:
    log.write(json.dumps({"command": "scontrol", "args": sys.argv[1:]}) + "\\n")
if sys.argv[1:3] == ["show", "hostnames"]:
    print("\\n".join(sys.argv[3].split(",")))
'''


def _fakes(directory: Path) -> Path:
    directory.mkdir()
    for name, body in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (directory / name).write_text(f"#!{sys.executable}\n{body}")
    # every fake node is this machine: the head's address is the loopback one
    (directory / "hostname").write_text("#!/bin/sh\necho 127.0.0.1\n")
    for path in directory.iterdir():
        path.chmod(0o755)
    return directory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"probe", None, timeout=30)
    print("answered")
except Exception as err:
    print(type(err).__name__, err)
"""


def _probe(port: str, token: Path) -> str:
    """What the head's GCS answers a client that holds ``token`` (one request of Ray's own GCS client)."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    done = subprocess.run([sys.executable, "-c", PROBE, f"127.0.0.1:{port}"], env=env, capture_output=True,
                          text=True, timeout=120)
    return done.stdout.strip()


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_sbatch_forwards_sigterm_requeues_and_the_requeued_job_resumes_the_same_run(tmp_path):
    assert main(["train", *TRAIN, "--out", str(tmp_path / "local")]) == 0  # the uninterrupted run, in-process

    run_dir, log = tmp_path / "run", tmp_path / "slurm-calls.jsonl"
    env = {
        "PATH": f"{_fakes(tmp_path / 'bin')}:{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "NEUROEVO_DIR": str(ROOT), "NEUROEVO_BIN": str(Path(sys.executable).parent),
        "NEUROEVO_TOKEN_DIR": str(tmp_path / "tokens"), "RAY_PORT": str(_free_port()),
        "FAKE_SLURM_LOG": str(log), "SLURM_JOB_ID": "4242", "SLURM_CPUS_ON_NODE": "1",
    }
    job = [str(SCRIPT), str(run_dir), "--", *TRAIN, "--workers", "2"]
    # the first job's trainer waits inside its checkpoint writes (faults.PauseGate), so that the signal
    # comes while it trains
    gate = PauseGate(tmp_path / "gate", match="last.pt")
    with spawn(["bash", *job], log=tmp_path / "job1.out", cwd=tmp_path,
               env={**env, **gate.env(), "SLURM_JOB_NODELIST": "node1,node2"}) as first:
        gate.release(gate.wait(240, child=first))  # generation 1
        marker = gate.wait(60, child=first)  # generation 2
        token = tmp_path / "tokens" / "4242"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) == 64
        # token authentication is on: a client holding another token is turned away (the job's own driver,
        # holding the job's token, is training)
        wrong = tmp_path / "wrong-token"
        wrong.write_text("0" * 64)
        assert "InvalidAuthToken" in _probe(env["RAY_PORT"], wrong)
        os.kill(first.pid, signal.SIGTERM)  # the batch shell alone, as SLURM does
        gate.release(marker)
        # the stop's own checkpoint write pauses too: let every write through until the job ends
        wait_until(lambda: gate.release_all() or not first.alive(), 180, what="the job's end")
        assert first.wait() == 130, first.output()
    output = first.output()
    assert "SIGTERM received" in output and "requeueing job 4242" in output
    stopped_at = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["generation"]
    assert stopped_at == 2 and generations_logged(run_dir) == 2
    assert not token.exists()  # the job's token goes with the job

    calls = _calls(log)
    assert {"command": "scontrol", "args": ["requeue", "4242"]} in calls
    starts = [c for c in calls if c["command"] == "srun" and c["args"][1:3] == ["start", "--head"]]
    joins = [c for c in calls if c["command"] == "srun" and c["args"][1:2] == ["start"] and "--head" not in c["args"]]
    assert [c["nodes"] for c in starts] == [["node1"]] and [c["nodes"] for c in joins] == [["node2"]]
    assert "--include-dashboard=false" in starts[0]["args"]

    # The requeued job, given one node of 2 CPUs this time, finds the checkpoint and continues the run
    # (with its 2 workers).
    log.unlink()
    requeued = {**env, "SLURM_JOB_NODELIST": "node1", "SLURM_CPUS_ON_NODE": "2", "SLURM_RESTART_COUNT": "1"}
    with spawn(["bash", *job], log=tmp_path / "job2.out", cwd=tmp_path, env=requeued) as second:
        assert second.wait(240) == 0, second.output()
    assert f"continuing {run_dir}" in second.output()
    assert all(c["command"] != "scontrol" or c["args"][0] != "requeue" for c in _calls(log))

    ours, local = run_record(run_dir), run_record(tmp_path / "local")
    assert ours["checkpoint"]["generation"] == 6
    # every logged value, the optimizer's state and the best policy, bit for bit (the configs differ in
    # run.workers and run.ray_address only); the observation statistics to float64 rounding
    assert differences(ours, local, ignore=("time/", "dist/", "wall_time", "config", "normalizer")) == []
    if ours["checkpoint"]["normalizer"] is not None:
        for name in ("mean", "m2"):
            torch.testing.assert_close(ours["checkpoint"]["normalizer"][name],
                                       local["checkpoint"]["normalizer"][name], rtol=1e-12, atol=1e-9)
