"""The other two launch paths, without a cluster: the ``ray up`` file goes through the config processing Ray's
cluster launcher applies before it touches a machine (defaults, the on-prem provider's preparation, Ray's
JSON schema); ``scripts/ray_cluster.sh`` runs against a fake ``ssh`` that records what each host was asked."""

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.commands import _bootstrap_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "scripts" / "ray" / "cluster.yaml"


def _prepared(config, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where `ray up` caches the resolved config
    return _bootstrap_config(copy.deepcopy(config), no_config_cache=True)


def test_the_ray_up_file_passes_the_cluster_launchers_own_checks(tmp_path, monkeypatch):
    raw = yaml.safe_load(CLUSTER_YAML.read_text())
    config = _prepared(raw, tmp_path, monkeypatch)
    assert config["provider"]["type"] == "local"
    # every listed worker machine, always
    (node_type,) = config["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(config["provider"]["worker_ips"]) == 2
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all(c.startswith("RAY_AUTH_MODE=token ") for c in starts)
    head = next(c for c in starts if "--head" in c)
    assert "--include-dashboard=false" in head and "dashboard-host" not in head
    assert config["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    # the checks are live: a misspelt field fails them
    with pytest.raises(jsonschema.ValidationError, match="worker_start_ray_comands"):
        _prepared({**raw, "worker_start_ray_comands": []}, tmp_path, monkeypatch)


FAKE_SSH = """
import json, os, shlex, sys
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
host, remote = sys.argv[-2], shlex.split(sys.argv[-1])  # what the remote shell would run: bash -lc COMMAND
assert remote[:2] == ["bash", "-lc"], remote
command = remote[2]
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(json.dumps({"host": host, "command": command, "stdin": stdin}) + "\\n")
if "hostname -I" in command:
    print("10.0.0.1")  # hostname -I | awk (first address)
elif "cat ~/.ray/auth_token" in command:
    print("f" * 64)
"""


def test_ray_cluster_sh_starts_a_token_cluster_over_ssh_and_stops_it(tmp_path):
    fake = tmp_path / "ssh"
    fake.write_text(f"#!{sys.executable}\n{FAKE_SSH}")
    fake.chmod(0o755)
    log = tmp_path / "ssh.jsonl"
    env = {**os.environ, "SSH": str(fake), "FAKE_SSH_LOG": str(log), "NEUROEVO_DIR": "/opt/neuroevo"}

    def run(*args):
        done = subprocess.run(["bash", str(ROOT / "scripts" / "ray_cluster.sh"), *args], env=env,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        log.unlink()
        return calls

    calls = run("start", "h1", "h2")
    head_start = next(c for c in calls if "start --head" in c["command"])
    assert head_start["host"] == "h1" and "--node-ip-address=10.0.0.1" in head_start["command"]
    assert "--include-dashboard=false" in head_start["command"] and "RAY_AUTH_MODE=token" in head_start["command"]
    token_copy = next(c for c in calls if "auth_token" in c["command"] and c["host"] == "h2")
    # the token travels on stdin, never on a command line, into a file only its owner reads
    assert token_copy["stdin"] == "f" * 64 and "f" * 64 not in json.dumps([c["command"] for c in calls])
    assert "umask 077" in token_copy["command"]
    join = next(c for c in calls if c["host"] == "h2" and "ray start" in c["command"])
    assert "--address=10.0.0.1:6379" in join["command"] and "RAY_AUTH_MODE=token" in join["command"]

    (train,) = run("train", "h1", "--", "--env", "CartPole-v1", "--workers", "3", "--out", "runs/x")
    assert train["host"] == "h1" and "RAY_AUTH_MODE=token" in train["command"]
    assert "neuroevo train --ray-address auto --env CartPole-v1 --workers 3 --out runs/x" in train["command"]

    stops = run("stop", "h1", "h2")
    assert [c["host"] for c in stops if "ray stop" in c["command"]] == ["h2", "h1"]  # the workers, then the head
