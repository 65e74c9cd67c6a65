"""The Ray evaluator on a real local Ray instance with 2 CPUs: the same fitness as the local evaluator,
member by member; a killed worker survived; bytes per generation independent of the parameter count;
a local instance bound to 127.0.0.1 with no dashboard."""

import ipaddress
import os
import signal
from pathlib import Path

import pytest
import ray
import torch

import neuroevo
from neuroevo.algorithms import make_optimizer, materialize
from neuroevo.distributed import RayEvaluator, WorkersLost, connect
from neuroevo.distributed.cluster import node_addresses
from neuroevo.evaluator import EnvFactory
from neuroevo.policies import MLP, ObsNormalizer
from neuroevo.rollout import EvalSettings

ENV, EPISODES, MAX_STEPS, POPSIZE = "CartPole-v1", 2, 60, 16
POLICY = MLP(obs_dim=4, act_dim=2, hidden=(8,), activation="tanh")
OPTIONS = {"noise_size": 2**19, "popsize": POPSIZE, "sigma": 0.5}
GA_OPTIONS = {"truncation": 4, "num_elites": 2}


@pytest.fixture(scope="module")
def cluster():
    started = connect(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def evaluator(cluster):
    # Half a CPU per worker, so that the other tests' evaluators fit beside this one on 2 CPUs.
    with RayEvaluator(POLICY, EnvFactory(ENV, device="cpu"), 2, shard_size=3, cpus_per_worker=0.5) as ev:
        yield ev


def _optimizer(algo, policy=POLICY, **overrides):
    options = {**OPTIONS, **(GA_OPTIONS if algo == "ga" else {}), **overrides}
    if algo == "de":  # no noise table: its members are params, rebuilt by the workers' replicas all the same
        options.pop("noise_size")
    return make_optimizer(algo, policy.init_params(torch.Generator().manual_seed(0)), None, seed=5, **options)


def _local(policy, params, normalizer, seed, max_steps=MAX_STEPS):
    env = neuroevo.make_env(ENV, params.shape[0] * EPISODES, "cpu")
    return neuroevo.evaluate(policy, params, env, EPISODES, max_steps, normalizer=normalizer, seed=seed,
                             collect_obs_stats=True)


def _assert_same(local, dist):
    assert torch.equal(dist.returns, local.returns)
    assert torch.equal(dist.episode_returns, local.episode_returns)
    assert torch.equal(dist.episode_lengths, local.episode_lengths)
    assert dist.env_steps == local.env_steps and dist.nonfinite_episodes == local.nonfinite_episodes
    assert dist.obs_stats[0] == local.obs_stats[0]  # the same observations were counted
    # summed in another order: equal to float64 rounding
    for ours, theirs in zip(dist.obs_stats[1:], local.obs_stats[1:], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("algo", ["es", "ga", "ars", "de"])
def test_distributed_evaluation_equals_local_member_by_member(evaluator, algo):
    opt = _optimizer(algo)
    normalizer = ObsNormalizer(4)
    for generation in range(3):
        population = opt.ask_population()
        params = population if algo == "de" else materialize(population, opt.noise)
        local = _local(POLICY, params, normalizer, seed=100 + generation)
        settings = EvalSettings(EPISODES, MAX_STEPS, normalizer=normalizer, seed=100 + generation,
                                collect_obs_stats=True)
        dist = evaluator.evaluate(population, settings, opt)
        _assert_same(local, dist)
        metrics = evaluator.last_metrics
        assert metrics["dist/shards"] == 6 and metrics["dist/retried_shards"] == 0
        # the workers' replicas follow the optimizer: the state goes out once, then fitness only
        assert metrics["dist/syncs"] == (2 if generation == 0 else 0)
        assert 0.0 <= metrics["dist/idle_fraction"] <= 1.0
        opt.tell(dist.returns)
        normalizer.merge(dist.obs_stats)


def test_a_population_without_its_optimizer_and_raw_params_evaluate_the_same(evaluator):
    opt = _optimizer("ga")
    opt.ask()
    opt.tell(torch.arange(POPSIZE, dtype=torch.float32))
    population = opt.ask_population()
    params = materialize(population, opt.noise)
    local = _local(POLICY, params, None, seed=7)
    for members in (population, params):  # bases shipped once per worker / rows shipped per shard
        dist = evaluator.evaluate(members, EvalSettings(EPISODES, MAX_STEPS, seed=7, collect_obs_stats=True))
        _assert_same(local, dist)


def test_workers_killed_while_their_shards_run_are_replaced_with_the_same_fitness(evaluator, monkeypatch):
    """Both workers die, then both their replacements, in one generation, each by a SIGKILL to its process from
    outside Ray right after it was sent a shard. (Chaos suite finding: replacements were capped at `workers` per
    generation, so the second pair's deaths ended a 2-worker run with "every Ray worker is lost and none can be
    started".)"""
    opt = _optimizer("es")
    population = opt.ask_population()
    local = _local(POLICY, materialize(population, opt.noise), None, seed=3)
    submit, killed = evaluator._submit, []

    def submit_then_kill(generation, worker, index):
        ref = submit(generation, worker, index)
        if len(killed) < 4 and worker.id not in killed:
            killed.append(worker.id)
            os.kill(worker.where["pid"], signal.SIGKILL)  # its shard is in flight
        return ref

    monkeypatch.setattr(evaluator, "_submit", submit_then_kill)
    dist = evaluator.evaluate(population, EvalSettings(EPISODES, MAX_STEPS, seed=3, collect_obs_stats=True), opt)
    _assert_same(local, dist)
    assert len(killed) == 4 and evaluator.last_metrics["dist/workers_lost"] == 4
    assert evaluator.last_metrics["dist/retried_shards"] >= 4
    monkeypatch.undo()
    # the run goes on: the replacements join (with the optimizer's state) and the next generation is exact too
    opt.tell(dist.returns)
    population = opt.ask_population()
    local = _local(POLICY, materialize(population, opt.noise), None, seed=4)
    settings = EvalSettings(EPISODES, MAX_STEPS, seed=4, collect_obs_stats=True)
    _assert_same(local, evaluator.evaluate(population, settings, opt))
    assert evaluator.workers + len(evaluator._starting) == 2  # the second replacement may be starting still


def test_a_shard_in_flight_on_every_worker_that_died_ends_the_generation_by_name():
    """Replacements are unlimited, so a shard that crashes whoever runs it must not start them forever: once it
    was in flight on SHARD_LOSSES workers that died in one generation, WorkersLost names its members."""
    from neuroevo.distributed import evaluator as module

    class DeadRay:  # every result is a dead worker's
        exceptions = ray.exceptions

        def get(self, ref):
            raise ray.exceptions.ActorDiedError()

        def kill(self, handle, no_restart=True):
            pass

    ev = RayEvaluator.__new__(RayEvaluator)
    ev.ray, ev.replace_lost, ev._workers, started = DeadRay(), True, {}, []
    ev._start_worker = lambda: started.append(1)
    generation = module._Generation(None, None, None, None, [(0, 3), (3, 6)], 1)
    for n in range(module.SHARD_LOSSES):
        worker = module._Worker(handle=None, id=n)
        ev._workers[n] = worker
        if n < module.SHARD_LOSSES - 1:
            assert ev._collect("ref", module._Task(1, worker, 0, False), generation) is None  # run again
    with pytest.raises(WorkersLost, match=r"^5 Ray workers died in this generation while evaluating members 3 to 5 "
                       r"\(the last: ActorDiedError: The actor died"):
        ev._collect("ref", module._Task(1, worker, 0, False), generation)
    assert len(started) == module.SHARD_LOSSES and generation.lost == module.SHARD_LOSSES


def test_when_every_worker_is_lost_evaluate_raises_workers_lost(cluster):
    with RayEvaluator(POLICY, EnvFactory(ENV, device="cpu"), 1, cpus_per_worker=0.5, replace_lost=False) as ev:
        population = _optimizer("es").ask_population()
        ray.kill(ev.worker_handles()[0])
        with pytest.raises(WorkersLost, match="every Ray worker is lost"):
            ev.evaluate(population, EvalSettings(EPISODES, MAX_STEPS, seed=0))


def test_bytes_sent_per_generation_do_not_grow_with_the_parameter_count(cluster):
    sent = {}
    for hidden in (14, 14_286):  # D = 7 * hidden + 2: 100 and 100,004 parameters
        policy = MLP(obs_dim=4, act_dim=2, hidden=(hidden,), activation="tanh")
        with RayEvaluator(policy, EnvFactory(ENV, device="cpu"), 1, shard_size=2, cpus_per_worker=0.5) as ev:
            for algo in ("es", "ars"):
                opt = _optimizer(algo, policy, popsize=8, sigma=0.05)
                sent[algo, policy.num_params] = []
                for generation in range(3):
                    population = opt.ask_population()
                    result = ev.evaluate(population, EvalSettings(1, 10, seed=generation), opt)
                    sent[algo, policy.num_params].append(ev.last_metrics["dist/bytes_sent"])
                    opt.tell(result.returns)
    for algo in ("es", "ars"):
        small, large = sent[algo, 100], sent[algo, 100_004]
        assert large[0] > 4 * 100_000  # generation 0 sends the worker the optimizer's state: O(D), measured
        assert large[1:] == small[1:]  # then the previous fitness: the same bytes for D = 100 and D = 100,004
        assert max(small[1:]) < 20_000


def _descendants(pid: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _listening_ips(pids: list[int]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    ips = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words
                ips.append(ipaddress.ip_address(raw))
    return ips


def test_the_local_instance_listens_on_loopback_only_and_serves_no_dashboard(evaluator):
    assert node_addresses() == ["127.0.0.1"]
    ray_processes = _descendants(os.getpid())
    ips = _listening_ips(ray_processes)
    assert ips, "found no listening Ray sockets to check"
    assert all(ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped.is_loopback) for ip in ips)
    # Ray keeps its dashboard process for internal services, but without include_dashboard it serves
    # nothing: no HTTP server, hence no dashboard and no job-submission API.
    dashboards = [pid for pid in ray_processes if b"dashboard/dashboard.py" in _cmdline(pid)]
    assert dashboards and _listening_ips(dashboards) == []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_replica_out_of_sync_is_resynchronized_and_the_fitness_stays_exact(evaluator):
    opt = _optimizer("es")
    evaluator.evaluate(opt.ask_population(), EvalSettings(EPISODES, MAX_STEPS, seed=0), opt)
    opt.tell(torch.linspace(0, 1, POPSIZE))  # not the fitness the evaluator measured: the replicas diverge
    population = opt.ask_population()
    local = _local(POLICY, materialize(population, opt.noise), None, seed=1)
    dist = evaluator.evaluate(population, EvalSettings(EPISODES, MAX_STEPS, seed=1, collect_obs_stats=True), opt)
    _assert_same(local, dist)
    assert evaluator.last_metrics["dist/syncs"] == 2 and evaluator.last_metrics["dist/retried_shards"] >= 2


def test_four_workers_give_bit_identical_results_to_two(evaluator):
    opt = _optimizer("ars")
    normalizer = ObsNormalizer(4)
    normalizer.update(torch.randn(50, 4, generator=torch.Generator().manual_seed(0)))
    population = opt.ask_population()
    settings = EvalSettings(EPISODES, MAX_STEPS, normalizer=normalizer, seed=9, collect_obs_stats=True)
    two = evaluator.evaluate(population, settings, opt)
    with RayEvaluator(POLICY, EnvFactory(ENV, device="cpu"), 4, shard_size=3, cpus_per_worker=0.25) as ev:
        four = ev.evaluate(population, settings, opt)
    assert torch.equal(four.returns, two.returns) and torch.equal(four.episode_lengths, two.episode_lengths)
    assert all(torch.equal(a, b) for a, b in zip(four.obs_stats, two.obs_stats, strict=True))
