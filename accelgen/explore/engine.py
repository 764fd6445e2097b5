"""Running a sweep on Dask distributed.

::

    points ─► plan: config digest + metric + context + tool versions ─► key
                 │   (already in the store? skip: resumed and shared points cost nothing)
                 ▼
    Dask client ─► LocalCluster (one single-threaded worker process per core)
                   or --scheduler ADDRESS (dask scheduler + dask worker, jobqueue, ...)
                 │   run_task(block, config dict, metric, context, work dir) on a worker
                 ▼
    as completed ─► Store.put (one transaction per record) ─► progress / JSON lines

Workers import accelgen and run the tools themselves; nothing travels but a config dict, a
context and the small records that come back. A worker that dies takes its running task with
it; the scheduler gives the task to another worker (up to Dask's ``allowed-failures``, then the
record says the worker died). The sweep's own process is the only writer of the store, so a
killed sweep loses only the tasks in flight.
"""

import asyncio
import concurrent.futures
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..numerics import ConfigError
from ..tools import ToolError
from .metrics import reason_of, run_task, tool_versions_for, with_options
from .store import record_key

__all__ = ["Task", "SweepOutcome", "plan", "connect", "run_tasks", "worker_versions"]


@dataclass
class Task:
    """One unit of work: a ``metric`` of one config, shared by every point that needs it.

    Members
    -------
    key : str
        The record key of ``metric`` (see :func:`~accelgen.explore.store.record_key`).
    metric : str
    config : Config
    context : SweepContext
        With the run options of the (first) point.
    points : list of str
        Idents of the points waiting for it.
    """
    key: str
    metric: str
    config: object
    context: object
    points: list = field(default_factory=list)


@dataclass
class SweepOutcome:
    """Counts of a finished (or interrupted) sweep.

    Members
    -------
    points, invalid : int
    tasks, cached, done, failed : int
        Tasks planned, records found in the store instead (skipped), tasks that finished with
        ``ok``, and that failed.
    seconds : float
    dashboard : str or None
    """
    points: int = 0
    invalid: int = 0
    tasks: int = 0
    cached: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    dashboard: str = None


def point_keys(spec, point, metrics, context, versions):
    """``{metric: key}`` of a valid point (``versions``: a cache ``{(metric, family or
    board): tool versions}``)."""
    ctx = with_options(context, point.options)
    data = point.config.to_dict()
    keys = {}
    for metric in metrics:
        cache = (metric, ctx.family, ctx.board)
        if cache not in versions:
            versions[cache] = tool_versions_for(metric, ctx)
        keys[metric] = record_key(spec.name, data, metric, ctx.key_fields(metric),
                                  versions[cache])
    return keys


def plan(spec, points, metrics, context, store, *, retry_failed=False, versions=None):
    """Record every point in ``store`` and return ``(tasks, cached)``: the tasks whose records
    are missing (failed ones too when ``retry_failed``) and how many records were found. An
    out-of-context ``fmax`` task also measures ``resources``, so a point missing both gets one
    task. ``versions`` (from :func:`worker_versions`) are the tool versions of the workers
    when they are not this process's."""
    versions, rows, tasks, cached = dict(versions or {}), [], {}, 0
    for point in points:
        if not point.valid:
            rows.append((point.ident, point.params, None, point.options, point.reason, {}))
            continue
        keys = point_keys(spec, point, metrics, context, versions)
        rows.append((point.ident, point.params, point.config.digest(), point.options, "",
                     keys))
        missing = []
        for metric in metrics:
            if store.has(keys[metric], ok_only=retry_failed):
                cached += 1
            else:
                missing.append(metric)
        if "fmax" in missing and "resources" in missing and context.board is None:
            missing.remove("resources")
        for metric in missing:
            key = keys[metric]
            if key not in tasks:
                tasks[key] = Task(key, metric, point.config, with_options(context,
                                                                          point.options))
            tasks[key].points.append(point.ident)
    store.add_points(rows)
    return list(tasks.values()), cached


def _versions_of(metrics, contexts):
    return {(m, c.family, c.board): tool_versions_for(m, c) for m in metrics for c in contexts}


def worker_versions(client, metrics, context):
    """The tool versions the cluster's workers will record (asked of one of them), in the
    cache form :func:`plan` takes: a remote cluster may run other versions than this
    process, and the record keys hold the workers' ones."""
    future = client.submit(_versions_of, tuple(metrics), (context,), pure=False)
    try:
        return future.result(timeout=120)
    except Exception as err:
        raise ToolError("dask", None, f"no worker answered within 120 s "
                                      f"({reason_of(err)})") from None


def _bokeh():
    try:
        import bokeh  # noqa: F401  (the Dask dashboard needs it)
    except ImportError:
        return False
    return True


@contextmanager
def connect(scheduler=None, workers=None):
    """A Dask client: to the scheduler at ``scheduler``, or to a new ``LocalCluster`` of
    ``workers`` (default: the number of cores) single-threaded worker processes, closed on
    exit. Yields ``(client, dashboard link or None)``. An unreachable scheduler raises
    :class:`ConfigError` naming ``--scheduler`` within ten seconds."""
    from distributed import Client, LocalCluster
    if scheduler is not None:
        _probe(scheduler)
        try:
            client = Client(scheduler, timeout="10s", set_as_default=False)
        except Exception as err:        # OSError, TimeoutError: it went away meanwhile
            raise _unreachable(scheduler, err) from None
        with client:
            yield client, _dashboard(client)
        return
    count = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                      dashboard_address=":0",     # any free port: never a clash
                      silence_logs=logging.ERROR) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client, _dashboard(client)


def _unreachable(scheduler, err):
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ConfigError(f"--scheduler: {scheduler!r} is not reachable ({detail}); expected the "
                       f"address of a running Dask scheduler, e.g. tcp://host:8786")


def _probe(scheduler):
    """Refuse a malformed address, and a TCP address where nothing listens, at once (a
    Dask client would retry for its whole timeout, then warn from its finalizer)."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    try:
        scheme, location = parse_address(str(scheduler))
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--scheduler: {scheduler!r} is not allowed ({err}); expected an "
                          f"address such as tcp://host:8786") from None
    from distributed.comm.registry import backends
    schemes = sorted(set(backends) - {"inproc"})      # inproc: this process only
    if scheme not in schemes:
        raise ConfigError(f"--scheduler: {scheduler!r} is not allowed (scheme {scheme!r}); "
                          f"expected {', '.join(f'{s}://' for s in schemes)} host:port")
    if scheme in ("tcp", "tls"):
        try:
            socket.create_connection((host, port), timeout=10).close()
        except OSError as err:
            raise _unreachable(scheduler, err.strerror or err) from None


def _dashboard(client):
    return client.dashboard_link if _bokeh() else None


def run_tasks(client, spec, tasks, store, work_root, *, on_record=None, on_progress=None):
    """Submit ``tasks`` to ``client`` and commit each record to ``store`` as it arrives.
    ``on_record(task, record, key)`` is called for each record, ``on_progress(done, failed,
    running, queued)`` after each task (running: as many of the tasks left as the cluster has
    worker threads; each runs one single-threaded tool). Returns ``(done, failed)``."""
    from distributed import as_completed
    work_root = Path(work_root).resolve()
    futures = {}
    for task in tasks:
        digest = task.config.digest()
        future = client.submit(run_task, spec.name, task.config.to_dict(), task.metric,
                               task.context, str(work_root / digest / task.key[:12]),
                               key=f"accelgen-{task.metric}-{task.key}", pure=False)
        futures[future] = task
    done = failed = 0

    slots = [1]

    def report():
        if on_progress is not None:
            try:
                slots[0] = sum(client.nthreads().values()) or slots[0]
            except Exception:       # the scheduler went away: _result says so next
                pass
            left = len(futures) - done - failed
            running = min(left, slots[0])
            on_progress(done, failed, running, left - running)

    report()
    for future in as_completed(futures, loop=client.loop):
        task = futures[future]
        records = _result(future, task)
        for record in records:
            key = _key_of(spec, task, record)
            store.put(key, block=spec.name, digest=task.config.digest(),
                      config=task.config.to_dict(),
                      context=task.context.key_fields(record["metric"]), record=record)
            if record["metric"] != task.metric or key != task.key:
                store.set_point_keys(task.points, record["metric"], key)
            if on_record is not None:
                on_record(task, record, key)
        if any(r["status"] == "failed" for r in records):
            failed += 1
        else:
            done += 1
        report()
    return done, failed


def _result(future, task):
    """The task's records; a task that could not finish (its workers died, Dask gave up on
    it) becomes a failed record. A lost scheduler raises :class:`ToolError`: the task's
    record stays missing, so a re-run does it."""
    from distributed.scheduler import KilledWorker
    try:
        return future.result()
    except (asyncio.CancelledError, concurrent.futures.CancelledError, OSError) as err:
        raise ToolError("dask", None, f"the Dask scheduler or its connection was lost "
                                      f"({reason_of(err)}); the finished records are in the "
                                      f"store, run the sweep again to finish it") from None
    except KilledWorker as err:
        return _failed(task, f"the task did not finish on any worker ({reason_of(err)})")
    except Exception as err:        # e.g. it could not be sent to or run on a worker
        return _failed(task, f"the task did not run ({reason_of(err)})")


def _failed(task, reason):
    return [{"metric": task.metric, "status": "failed", "values": {}, "reason": reason,
             "log": "", "host": "", "worker": "", "seconds": 0.0,
             "tools": tool_versions_for(task.metric, task.context)}]


def _key_of(spec, task, record):
    """The key of a record as computed on its worker (its own tool versions)."""
    return record_key(spec.name, task.config.to_dict(), record["metric"],
                      task.context.key_fields(record["metric"]), record["tools"])


def elapsed_since(start):
    return round(time.monotonic() - start, 2)
