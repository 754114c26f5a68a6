"""Scale-out on Dask: chunked generation and scans equal to one process; bad clusters.

One small in-process LocalCluster (2 single-threaded workers on threads, a TCP
scheduler so the command line can reach it with --scheduler) serves the module and is
closed at the end. The generation runs are tiny (1500 events, 2000 training calls).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import socket
import time

import pytest
import torch
from click.testing import CliRunner

from forward.distributed import TaskFailedError, chunk_seed, dask_client, map_tasks

distributed = pytest.importorskip("distributed")
pytest.importorskip("h5py")

GEN = dict(train_calls=2000, seed=5)
N_EVENTS, CHUNK = 1500, 700


@pytest.fixture(scope="module")
def cluster():
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp", dashboard_address=":0")
    client = distributed.Client(lc, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        lc.close()


@pytest.fixture(scope="module")
def one_worker():
    lc = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0")
    client = distributed.Client(lc, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        lc.close()


@pytest.fixture
def restore_environ():
    """Dask's nanny writes its pre-spawn variables (OMP_NUM_THREADS=1, ...) into this
    process's environment when it starts a worker process: undo that after the test."""
    import os

    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _worker_settings():
    import os

    import dask

    return (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            dask.config.get("distributed.worker.profile.enabled"))


def test_local_worker_processes_keep_glibc_malloc_adaptive(restore_environ):
    """No MALLOC_TRIM_THRESHOLD_ (it turns glibc's adaptive mmap threshold off: 2.5x the
    CPU per chunk) and no statistical profiler in the workers of dask_client(workers=)."""
    import os

    from forward.chunked import WORKER_MODULES

    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    # the preload of the CLI's clusters: one forkserver serves this test and the CLI's
    with dask_client(workers=1, preload=WORKER_MODULES) as client:
        assert list(client.run(_worker_settings).values()) == [(None, False)]
    # Dask's own default is untouched outside the cluster's start
    import dask

    assert dask.config.get("distributed.nanny.pre-spawn-environ")[
        "MALLOC_TRIM_THRESHOLD_"] == 65536


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- seeds and task mapping ---------------------------------------------------------------
def test_chunk_seed_is_a_function_of_seed_and_index_only():
    seeds = [chunk_seed(s, k) for s in range(3) for k in range(50)]
    assert len(set(seeds)) == len(seeds)  # 150 draws from 9e8 values: collision p < 2e-5
    assert seeds == [chunk_seed(s, k) for s in range(3) for k in range(50)]
    assert all(0 <= v <= 899_999_998 for v in seeds)
    with pytest.raises(ValueError, match="index: expected an integer >= 0, got -1"):
        chunk_seed(0, -1)


def _square(shared, item):
    return shared * item * item


def test_map_tasks_here_on_an_executor_and_on_dask_keep_the_order(cluster):
    from concurrent.futures import ThreadPoolExecutor

    want = [3 * i * i for i in range(7)]
    assert map_tasks(_square, range(7), shared=3) == want
    with ThreadPoolExecutor(2) as ex:
        assert map_tasks(_square, range(7), shared=3, client=ex) == want
    assert map_tasks(_square, range(7), shared=3, client=cluster) == want
    with pytest.raises(TypeError, match="client: expected None, a concurrent"):
        map_tasks(_square, range(2), client="tcp://x:1")


_TRIES: dict = {}


def _flaky(shared, item):
    _TRIES[item] = _TRIES.get(item, 0) + 1
    if item == 1 and _TRIES[item] == 1:
        raise OSError("worker lost its disk")  # first try of task 1 fails
    return item


def test_a_failed_task_is_retried(cluster):
    _TRIES.clear()
    assert map_tasks(_flaky, range(3), client=cluster, retries=1) == [0, 1, 2]
    assert _TRIES[1] == 2
    _TRIES.clear()
    with pytest.raises(OSError, match="worker lost its disk"):
        map_tasks(_flaky, range(3), client=cluster, retries=0)


# -- chunked generation -------------------------------------------------------------------
def _assert_same(a, b):
    for name in ("momenta", "x1", "x2", "pids", "weights", "incoming_pids"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    from forward.detector.objects import RecoEvents

    for name in RecoEvents.field_names():
        assert torch.equal(getattr(a.reco, name), getattr(b.reco, name)), name
    assert a.cross_section == b.cross_section
    assert _same_run(a.metadata) == _same_run(b.metadata)


def _same_run(metadata: dict) -> dict:
    """The metadata without what differs between two runs of one job: the provenance's
    time and command line."""
    prov = {k: v for k, v in metadata["provenance"].items()
            if k not in ("created_utc", "command")}
    return {**metadata, "provenance": prov}


@pytest.fixture(scope="module")
def serial_events():
    from forward.chunked import generate_events_chunked

    return generate_events_chunked("drell-yan", N_EVENTS, chunk_size=CHUNK, **GEN)


def test_chunked_events_are_the_same_for_0_1_and_2_workers(serial_events, one_worker,
                                                            cluster, tmp_path):
    from forward.chunked import generate_events_chunked

    ev = serial_events
    assert len(ev) == N_EVENTS and ev.metadata["n_chunks"] == 3
    # weights sum to σ, every hard event has its reco row (offsets of hard_index right)
    assert math.isclose(float(ev.weights.sum()), ev.cross_section, rel_tol=1e-12)
    assert torch.equal(ev.reco.hard_index, torch.arange(N_EVENTS))
    # the chunks are independent streams: no event repeats across chunks
    assert torch.unique(ev.x1).numel() == N_EVENTS
    one = generate_events_chunked("drell-yan", N_EVENTS, chunk_size=CHUNK, client=one_worker,
                                  **GEN)
    _assert_same(ev, one)
    # a client that is still a future (a cluster starting in the background) is waited for
    future = concurrent.futures.Future()
    future.set_result(cluster)
    timings = {}
    two = generate_events_chunked("drell-yan", N_EVENTS, chunk_size=CHUNK, client=future,
                                  timings=timings, **GEN)
    _assert_same(ev, two)
    assert list(timings) == ["setup", "train", "wait_client", "chunks", "merge"]
    assert all(t >= 0 for t in timings.values())
    # chunk_dir: deprecated, ignored (no chunk files any more), still checked
    with pytest.warns(FutureWarning, match="chunk_dir is ignored"):
        three = generate_events_chunked("drell-yan", N_EVENTS, chunk_size=CHUNK,
                                        chunk_dir=tmp_path, **GEN)
    _assert_same(ev, three)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="chunk_dir: .* is not an existing folder"):
        generate_events_chunked("drell-yan", 10, chunk_dir=tmp_path / "nope", **GEN)
    with pytest.raises(TypeError, match="timings: expected a dict or None, got list"):
        generate_events_chunked("drell-yan", 10, timings=[], **GEN)


def test_cli_generate_on_a_scheduler_writes_the_same_file(serial_events, cluster, tmp_path):
    from forward.io import load_hdf5
    from invsim.cli import cli

    out = tmp_path / "dy.h5"
    res = CliRunner().invoke(cli, [
        "generate", "drell-yan", "--events", str(N_EVENTS), "--chunk-size", str(CHUNK),
        "--train-calls", "2000", "--seed", "5", "--scheduler", cluster.scheduler.address,
        "-o", str(out)])
    assert res.exit_code == 0, res.output
    _assert_same(serial_events, load_hdf5(out))
    assert [p.name for p in tmp_path.iterdir()] == ["dy.h5"]


def test_cli_generate_on_local_worker_processes_writes_the_same_file(serial_events, tmp_path,
                                                                     restore_environ):
    """--workers 2: a local cluster of 2 processes forked from a forkserver that imported
    forward once, started while the sampler trains; the same events as in one process."""
    import json

    from forward.io import load_hdf5
    from invsim.cli import cli

    out = tmp_path / "dy.h5"
    res = CliRunner().invoke(cli, [
        "generate", "drell-yan", "--events", str(N_EVENTS), "--chunk-size", str(CHUNK),
        "--train-calls", "2000", "--seed", "5", "--workers", "2", "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    _assert_same(serial_events, load_hdf5(out))
    timings = json.loads(res.output.strip().splitlines()[-1])["timings_s"]
    assert list(timings) == ["setup", "train", "wait_client", "chunks", "merge", "close",
                             "write"]
    assert [p.name for p in tmp_path.iterdir()] == ["dy.h5"]


def test_dask_client_in_the_background_preloads_modules(cluster, tmp_path, monkeypatch):
    import sys

    name = f"invsim_preload_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with dask_client(scheduler=cluster.scheduler.address, preload=[name],
                     background=True) as future:
        assert isinstance(future, concurrent.futures.Future)
        assert map_tasks(_square, range(4), shared=2, client=future) == [0, 2, 8, 18]
        t0 = time.perf_counter()  # the import runs without being waited for
        while name not in sys.modules and time.perf_counter() - t0 < 10:
            time.sleep(0.02)
        assert name in sys.modules
    with pytest.raises(ValueError, match="preload: expected module names like"):
        with dask_client(workers=1, preload=["no such module"]):
            pass
    with pytest.raises(TypeError, match="preload: expected module names, got int"):
        with dask_client(workers=1, preload=3):
            pass


def test_a_failing_chunk_leaves_no_output(cluster, tmp_path, monkeypatch):
    import forward.chunked as chunked
    from invsim.cli import cli

    real = chunked._run_chunk

    def broken(shared, chunk):
        if chunk.index == 1:
            raise RuntimeError("chunk 1 exploded")
        return real(shared, chunk)

    monkeypatch.setattr(chunked, "_run_chunk", broken)
    out = tmp_path / "dy.h5"
    res = CliRunner().invoke(cli, [
        "generate", "drell-yan", "--events", "600", "--chunk-size", "300",
        "--train-calls", "1000", "--scheduler", cluster.scheduler.address, "-o", str(out)])
    assert res.exit_code != 0 and "chunk 1 exploded" in res.output, res.output
    assert list(tmp_path.iterdir()) == []  # neither OUTPUT nor chunk files


def test_unreachable_scheduler_is_a_quick_one_line_error(tmp_path):
    from invsim.cli import cli

    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "dy.h5"
    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, ["generate", "drell-yan", "--events", "100",
                                   "--scheduler", address, "-o", str(out)])
    assert time.perf_counter() - t0 < 30
    assert res.exit_code == 1
    msg = res.output.strip()
    assert msg.count("\n") == 0 and f"cannot reach '{address}'" in msg, msg
    assert not out.exists()
    with pytest.raises(ValueError, match="workers, scheduler: give exactly one"):
        with dask_client():
            pass
    with pytest.raises(ValueError, match="scheduler: expected an address like"):
        with dask_client(scheduler="tcp://nohost"):
            pass
    t0 = time.perf_counter()  # in the background too: the address is checked up front
    with pytest.raises(ConnectionError, match=f"cannot reach '{address}'"):
        with dask_client(scheduler=address, background=True):
            pass
    assert time.perf_counter() - t0 < 30


def test_task_failed_error_is_a_runtime_error():
    assert issubclass(TaskFailedError, RuntimeError)


# -- scans ----------------------------------------------------------------------------------
class NoisyToy:
    """log p(x | mu) = log mean_s N(x; mu + 0.3 z_s, 1): z drawn once per event (seeded),
    like the MEM's importance samples; ``evaluate`` reports an MC error and flags."""

    parameter_names = ("mu",)

    def __init__(self, x, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = x
        self.z = torch.randn(len(x), 64, generator=g, dtype=torch.float64)

    def _terms(self, theta):
        mu = theta["mu"].reshape(-1, 1, 1)
        d = self.x.reshape(1, -1, 1) - mu - 0.3 * self.z
        return -0.5 * d**2 - 0.5 * math.log(2 * math.pi)

    def log_prob(self, theta):
        t = self._terms(theta)
        return torch.logsumexp(t, -1) - math.log(t.shape[-1])

    def evaluate(self, theta):
        from types import SimpleNamespace

        t = self._terms(theta)
        lp = torch.logsumexp(t, -1) - math.log(t.shape[-1])
        w = torch.exp(t - lp.unsqueeze(-1))
        err = w.std(-1) / math.sqrt(t.shape[-1])
        flagged = self.x.abs().unsqueeze(0).expand_as(lp) > 2.0 + theta["mu"].unsqueeze(-1)
        return SimpleNamespace(log_p=lp, error=err, flagged=flagged,
                               flag_reasons={"far": flagged})


def test_scan_on_two_workers_equals_the_single_process_scan(cluster):
    import numpy as np

    from invsim.scan import scan

    g = torch.Generator().manual_seed(3)
    lik = NoisyToy(0.4 + torch.randn(300, generator=g, dtype=torch.float64), seed=9)
    grid = {"mu": torch.linspace(-0.5, 1.5, 21, dtype=torch.float64)}
    one = scan(lik, grid, batch_size=4, on_flagged="ignore")
    two = scan(lik, grid, batch_size=4, on_flagged="ignore", client=cluster)
    for v in ("log_l", "log_l_error", "n_flagged", "m2dlogl"):
        np.testing.assert_allclose(two.dataset[v].values, one.dataset[v].values, rtol=1e-13,
                                   atol=0, err_msg=v)
    assert two.flags.n_flagged == one.flags.n_flagged > 0
    assert two.flags.reasons == one.flags.reasons
    assert two.best_fit == pytest.approx(one.best_fit, rel=1e-12)
    with pytest.raises(ValueError, match="client: profiled scans run in one process"):
        scan(_TwoParam(lik), grid, profile=["s"], client=cluster)


class _TwoParam:
    parameter_names = ("mu", "s")

    def __init__(self, inner):
        self.inner = inner

    def log_prob(self, theta):
        return self.inner.log_prob(theta)


# -- invsim scan --workers/--scheduler ----------------------------------------------------
_SCAN_FACTORY = '''
import math
import torch


class Toy:
    """log p(x | mu) = log mean_s N(x; mu + 0.3 z_s, 1), z drawn once per event (seeded)."""

    parameter_names = ("mu",)

    def __init__(self, x):
        self.x = x
        g = torch.Generator().manual_seed(9)
        self.z = torch.randn(len(x), 64, generator=g, dtype=torch.float64)

    def log_prob(self, theta):
        d = self.x.reshape(1, -1, 1) - theta["mu"].reshape(-1, 1, 1) - 0.3 * self.z
        t = -0.5 * d**2 - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(t, -1) - math.log(t.shape[-1])


def make(events):
    return Toy(events.momenta[:, 0, 3])
'''


@pytest.fixture(scope="module")
def scan_inputs(tmp_path_factory):
    """An HDF5 file of 300 toy events (x = pz of the first particle ~ N(0.4, 1)), the
    factory module scoring them, and the single-process scan of mu."""
    from forward.eventset import EventSet
    from forward.io import save_hdf5
    from invsim.cli.scan import scan_command

    tmp = tmp_path_factory.mktemp("scan")
    n = 300
    g = torch.Generator().manual_seed(3)
    pz = 0.4 + torch.randn(n, generator=g, dtype=torch.float64)
    mom = torch.zeros(n, 2, 4, dtype=torch.float64)
    mom[:, 0, 3], mom[:, 1, 3] = pz, -pz
    mom[:, :, 0] = pz.abs().unsqueeze(-1) + 1.0
    x = torch.full((n,), 0.1, dtype=torch.float64)
    h5 = save_hdf5(EventSet(process="toy", momenta=mom, x1=x, x2=x, pids=[11, -11],
                            sqrt_s=13000.0), tmp / "ev.h5")
    module = tmp / "toy_scan_factory.py"
    module.write_text(_SCAN_FACTORY)
    args = ["--data", str(h5), "--likelihood", f"{module}:make", "--param", "mu=-0.5:1.5:21",
            "--batch-size", "4", "--json"]
    res = CliRunner().invoke(scan_command, [*args, "-o", str(tmp / "one")])
    assert res.exit_code == 0, res.output
    assert "timings_s" not in json.loads(res.output)  # only with --workers/--scheduler
    return args, tmp / "one"


def _assert_same_scan(out, reference):
    import numpy as np
    import xarray as xr

    with xr.open_dataset(out / "scan.nc") as a, xr.open_dataset(reference / "scan.nc") as b:
        for v in ("log_l", "m2dlogl"):
            np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-13, atol=0,
                                       err_msg=v)
    one, two = (json.loads((p / "scan.json").read_text()) for p in (reference, out))
    assert two["best_fit"] == pytest.approx(one["best_fit"], rel=1e-12)
    assert len(two["intervals"]) == len(one["intervals"])
    for a, b in zip(two["intervals"], one["intervals"], strict=True):
        assert {k: v for k, v in a.items() if isinstance(v, str)} == \
            {k: v for k, v in b.items() if isinstance(v, str)}
        nums = [k for k, v in b.items() if not isinstance(v, str)]
        assert [a[k] for k in nums] == pytest.approx([b[k] for k in nums], rel=1e-12)


def test_cli_scan_on_a_scheduler_starts_the_client_while_the_likelihood_is_built(
        scan_inputs, cluster, tmp_path, monkeypatch):
    """--scheduler: the client connects in the background (a Future, the workers told to
    preload the scan's modules) before the likelihood is built; the scan equals the
    single-process one."""
    import forward.distributed as fd
    import invsim.cli.scan as cli_scan

    args, reference = scan_inputs
    order, calls = [], []
    real_client, real_inputs = fd.dask_client, cli_scan.inference_inputs

    @contextlib.contextmanager
    def recording_client(**kwargs):
        calls.append(kwargs)
        with real_client(**kwargs) as client:
            order.append(("client", isinstance(client, concurrent.futures.Future)))
            yield client

    def recording_inputs(**kwargs):
        order.append(("likelihood", None))
        return real_inputs(**kwargs)

    monkeypatch.setattr(fd, "dask_client", recording_client)
    monkeypatch.setattr(cli_scan, "inference_inputs", recording_inputs)
    out = tmp_path / "sched"
    res = CliRunner().invoke(cli_scan.scan_command, [
        *args, "--scheduler", cluster.scheduler.address, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert order == [("client", True), ("likelihood", None)]
    assert calls == [{"workers": None, "scheduler": cluster.scheduler.address,
                      "preload": cli_scan.WORKER_MODULES, "background": True}]
    timings = json.loads(res.output)["timings_s"]
    assert list(timings) == ["likelihood", "wait_client", "scan", "close"]
    assert all(v >= 0 for v in timings.values())
    _assert_same_scan(out, reference)


@pytest.mark.slow  # starts a forkserver that imports torch and invsim: ~10 s
def test_cli_scan_on_local_worker_processes_equals_one_process(scan_inputs, tmp_path,
                                                                restore_environ):
    """--workers 2: two worker processes forked from a forkserver that preloaded the
    scan's modules; the likelihood (from a factory file, pickled by value) scored there
    gives the single-process scan."""
    from invsim.cli.scan import scan_command

    args, reference = scan_inputs
    out = tmp_path / "two"
    res = CliRunner().invoke(scan_command, [*args, "--workers", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert list(json.loads(res.output)["timings_s"]) == ["likelihood", "wait_client", "scan",
                                                         "close"]
    _assert_same_scan(out, reference)


def test_cli_scan_on_an_unreachable_scheduler_is_a_one_line_error(scan_inputs, tmp_path):
    from invsim.cli.scan import scan_command

    args, _ = scan_inputs
    address = f"tcp://127.0.0.1:{_free_port()}"
    res = CliRunner().invoke(scan_command, [*args, "--scheduler", address,
                                            "-o", str(tmp_path / "x")])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0 and f"cannot reach '{address}'" in res.output
    assert not (tmp_path / "x" / "scan.json").exists()
