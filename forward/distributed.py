"""Running independent tasks in one process, on an executor or on a Dask cluster.

The embarrassingly parallel work of invsim (chunks of generated events, batches of θ
points of a likelihood scan) is written as a list of independent tasks ``fn(shared,
item)``: ``shared`` is one large read-only object (a trained sampler, a likelihood with
its importance samples) sent once to every worker, ``item`` the small description of
one task. :func:`map_tasks` runs them

* in this process, in order, when no ``client`` is given (the default: no extra
  dependency is needed);
* on a :class:`concurrent.futures.Executor` (threads or processes);
* on a ``dask.distributed.Client`` (a :class:`~distributed.LocalCluster` or any
  running cluster), ``shared`` scattered once to all workers, each task retried on
  another worker when its worker dies;
* on a :class:`concurrent.futures.Future` of one of these (a cluster still starting in
  the background, see below): the tasks wait for it.

Results always come back in the order of ``items``, so results do not depend on the
number of workers as long as every task is deterministic (its random numbers seeded by
:func:`chunk_seed`, never by the worker).

:func:`dask_client` opens a client for the command line's ``--workers N`` (a local
cluster of N single-threaded worker processes) or ``--scheduler ADDRESS`` (a running
``dask scheduler``), with a connection timeout so that an unreachable address fails
within seconds. Its start-up costs are kept off the critical path (measured in
``benchmarks/scaleout.py``):

* ``background=True`` yields a :class:`concurrent.futures.Future` of the client and
  starts the cluster in a thread, so that it comes up while the caller works (the
  chunked generator trains its sampler meanwhile); the address check of
  ``scheduler`` still happens before it returns.
* ``preload`` names modules the workers import before their first task. A local
  cluster forks its workers from a ``forkserver`` that has imported them once (torch
  and invsim cost seconds per process to import, and each spawned worker would pay
  that again); the workers of a running scheduler import them as soon as the client
  connects, while the caller works on.

Dask is imported only here and only when one of them is used (the ``dask`` extra:
``pip install 'invsim[dask]'``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["TaskFailedError", "chunk_seed", "dask_client", "map_tasks"]

#: largest seed :func:`chunk_seed` returns (below Pythia 8's limit of 900 000 000 - 1,
#: leaving room for the shower's ``seed + 1``)
_MAX_SEED = 899_999_998


class TaskFailedError(RuntimeError):
    """A parallel task failed for good (its worker died on every retry, or it raised)."""


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index`` of a run seeded with ``seed``.

    Derived with :class:`numpy.random.SeedSequence` from the pair (seed, index), so the
    chunks' random streams are independent of each other and of the number of workers
    that run them.

    Args:
        seed: the run's seed, integer >= 0.
        index: the chunk's index, integer >= 0.

    Returns:
        An integer in [0, 899 999 998] (valid for torch and for Pythia 8 with ``+ 1``).

    Raises:
        ValueError: a negative or non-integer seed or index.
    """
    for name, v in (("seed", seed), ("index", index)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name}: expected an integer >= 0, got {v!r}")
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) % (_MAX_SEED + 1))


def _is_dask_client(client) -> bool:
    return type(client).__name__ == "Client" and hasattr(client, "scatter")


def map_tasks(
    fn: Callable[[Any, Any], Any],
    items: Sequence,
    *,
    shared: Any = None,
    client=None,
    retries: int = 2,
    what: str = "task",
) -> list:
    """``[fn(shared, item) for item in items]``, here, on an executor or on a Dask cluster.

    Args:
        fn: a picklable function of (shared, item) (module-level for process workers).
        items: the tasks' arguments, one per task.
        shared: one object passed to every task (scattered once with Dask).
        client: None (run here, in order), a :class:`concurrent.futures.Executor`, a
            ``dask.distributed.Client``, or a :class:`concurrent.futures.Future` of one
            of them (e.g. from ``dask_client(..., background=True)``; waited for here,
            its start-up error raised here).
        retries: with Dask, how often a task is rerun after an error or a dead worker.
        what: name of a task in error messages (e.g. ``"chunk"``).

    Returns:
        The results in the order of ``items``.

    Raises:
        TypeError: ``client`` is neither None, an Executor nor a Dask client.
        TaskFailedError: with Dask, a task whose worker died on every try.
        Exception: an error raised by ``fn`` itself (after the retries), unchanged.
    """
    items = list(items)
    if isinstance(client, concurrent.futures.Future):
        client = client.result()  # a cluster started in the background: wait for it
    if client is None:
        return [fn(shared, item) for item in items]
    if isinstance(client, concurrent.futures.Executor):
        return list(client.map(fn, [shared] * len(items), items))
    if not _is_dask_client(client):
        raise TypeError(f"client: expected None, a concurrent.futures.Executor or a "
                        f"dask.distributed.Client, got {type(client).__name__}")
    from distributed import KilledWorker

    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries: expected an integer >= 0, got {retries!r}")
    handle = client.scatter(shared, broadcast=True, hash=False)
    futures = client.map(fn, [handle] * len(items), items, retries=retries, pure=False)
    try:
        results = []
        for i, fut in enumerate(futures):
            try:
                results.append(fut.result())
            except KilledWorker as err:
                raise TaskFailedError(
                    f"{what} {i} of {len(items)}: its worker died on every try ({err}); "
                    "nothing was written") from None
        return results
    finally:
        client.cancel(futures)
        client.cancel([handle])


def _probe(address: str, timeout: float) -> None:
    """Fail fast, without Dask, when nothing listens at a ``tcp://host:port`` address."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"scheduler: expected an address like tcp://host:8786, got {address!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout: expected a number of seconds > 0, got {timeout!r}")
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "tls"):
        return  # other transports (inproc, ucx): leave the check to Dask
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ValueError(f"scheduler: expected an address like tcp://host:8786, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=float(timeout)):
            pass
    except OSError as err:
        msg = " ".join(str(err).split()) or type(err).__name__
        raise ConnectionError(f"scheduler: cannot reach {address!r} within {timeout:g} s "
                              f"({msg})") from None


def _import_modules(modules: Sequence[str]) -> None:
    """Import ``modules`` (run on every worker by :func:`dask_client`'s ``preload``)."""
    import importlib

    for name in modules:
        importlib.import_module(name)


def _check_preload(preload) -> tuple[str, ...]:
    if isinstance(preload, str):
        preload = (preload,)
    try:
        names = tuple(preload)
    except TypeError:
        raise TypeError(f"preload: expected module names, got {type(preload).__name__}") \
            from None
    for name in names:
        if not isinstance(name, str) or not name.replace(".", "").replace("_", "").isalnum():
            raise ValueError(f"preload: expected module names like 'forward.chunked', "
                             f"got {name!r}")
    return names


def _local_cluster(workers: int, preload: tuple[str, ...]):
    """A LocalCluster of ``workers`` single-threaded processes, forked from a forkserver
    that imported ``preload`` once (spawned processes when there is nothing to preload).

    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off
    glibc's adaptive mmap threshold: every tensor of more than 128 kB is then a fresh
    mmap, page-faulted in and unmapped when freed. A chunk of 25 000 Drell-Yan events
    took 2.5 times the CPU time of the same chunk in this process that way (measured);
    the workers here start without it (a value in the environment is still honoured),
    and without Dask's statistical profiler (a stack sample every 10 ms: another quarter
    of the chunk's CPU time in the worker's other threads, measured).
    """
    import dask
    from distributed import LocalCluster

    kwargs = dict(n_workers=workers, threads_per_worker=1, processes=True,
                  dashboard_address=":0")
    env = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
           "distributed.worker.profile.enabled": False}
    if not preload:
        with dask.config.set(env):
            return LocalCluster(**kwargs)
    import multiprocessing

    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver", **env}):
        get_mp_context()  # Dask's own preload list is set once, first; ours replaces it
        # takes effect when the forkserver starts (once per process; later calls keep the
        # first list)
        multiprocessing.get_context("forkserver").set_forkserver_preload(
            ["distributed", *preload])
        return LocalCluster(**kwargs)


def _open(workers: int | None, scheduler: str | None, timeout: float,
          preload: tuple[str, ...]) -> tuple[Any, list[Callable[[], Any]]]:
    """The client and its closers (run in order on exit)."""
    from distributed import Client

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{float(timeout)}s", set_as_default=False)
        except Exception as err:  # noqa: BLE001 - any failure to talk to it is reported
            msg = " ".join(str(err).split()) or type(err).__name__
            raise ConnectionError(f"scheduler: {scheduler!r} accepted the connection but did "
                                  f"not answer as a Dask scheduler within {timeout:g} s "
                                  f"({msg})") from None
        if preload:  # each worker imports them while the caller works on
            from distributed import fire_and_forget

            for address in client.scheduler_info(n_workers=-1)["workers"]:
                fire_and_forget(client.submit(_import_modules, preload, workers=[address],
                                              allow_other_workers=False, pure=False))
        return client, [client.close]
    try:
        cluster = _local_cluster(workers, preload)
    except Exception as err:  # noqa: BLE001 - e.g. a worker process that cannot start
        msg = " ".join(str(err).split()) or type(err).__name__
        raise ConnectionError(f"workers: a local Dask cluster of {workers} processes did "
                              f"not start ({msg})") from None
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return client, [client.close, cluster.close]


@contextlib.contextmanager
def dask_client(
    *, workers: int | None = None, scheduler: str | None = None, timeout: float = 10.0,
    preload: Sequence[str] = (), background: bool = False,
) -> Iterator[Any]:
    """A Dask client on a new local cluster or on a running scheduler; closed on exit.

    Args:
        workers: number of local worker processes (one thread each), or None.
        scheduler: address of a running scheduler (``tcp://host:8786``), or None.
        timeout: seconds to wait for the scheduler before giving up.
        preload: names of modules every worker imports before its first task (with
            ``workers``: once, in the forkserver the workers are forked from; with
            ``scheduler``: on each worker, started at connection without waiting).
        background: start the cluster (or connect) in a thread and yield a
            :class:`concurrent.futures.Future` of the client at once, for
            :func:`map_tasks` and the functions built on it; the address check of
            ``scheduler`` is still done before.

    Yields:
        A ``dask.distributed.Client`` (or, with ``background``, a Future of one whose
        ``result()`` raises the errors below).

    Raises:
        ValueError: both or neither of ``workers`` and ``scheduler``, workers < 1, or
            a bad module name in ``preload``.
        ImportError: Dask is not installed (``pip install 'invsim[dask]'``).
        ConnectionError: the scheduler cannot be reached within ``timeout`` seconds, or
            the local cluster does not start.
    """
    if (workers is None) == (scheduler is None):
        raise ValueError("workers, scheduler: give exactly one of them")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    preload = _check_preload(preload)
    try:
        import distributed  # noqa: F401 - fail here, not in the background
    except ImportError as err:
        raise ImportError("Dask is needed for workers/scheduler: pip install 'invsim[dask]' "
                          f"({err})") from None
    if scheduler is not None:
        _probe(scheduler, timeout)
    if not background:
        client, closers = _open(workers, scheduler, timeout, preload)
        try:
            yield client
        finally:
            _close(closers)
        return
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="invsim-dask") as pool:
        future = pool.submit(_open, workers, scheduler, timeout, preload)
        client_future: concurrent.futures.Future = concurrent.futures.Future()
        future.add_done_callback(lambda f: _settle(client_future, f))
        try:
            yield client_future
        finally:
            try:
                _client, closers = future.result()
            except Exception:  # noqa: BLE001 - raised to whoever waited for the client
                closers = []
            _close(closers)


def _settle(target: concurrent.futures.Future, done: concurrent.futures.Future) -> None:
    """Resolve ``target`` with the client of ``done`` (a (client, closers) future)."""
    err = done.exception()
    if err is not None:
        target.set_exception(err)
    else:
        target.set_result(done.result()[0])


def _close(closers: list[Callable[[], Any]]) -> None:
    """Run every closer, the later ones even when an earlier one raises."""
    if closers:
        try:
            closers[0]()
        finally:
            _close(closers[1:])
