"""Running ndstream jobs on a Dask cluster.

``x.compute(scheduler=client)``, ``ndstream.compute(..., scheduler=client)``
and ``x.to_zarr(path, scheduler=client)`` (or any of them after
``ndstream.config.set(scheduler="distributed")``, which uses the active
``Client``) run the job on the cluster's workers instead of in this
process. The job is planned once (:func:`ndstream` ``plan``: the array as
a program, the output, the memory budget of every task and the stages);
each stage's tasks go to the workers as a few Dask tasks per worker
thread, each running a range of ndstream tasks with Dask's ``retries``,
and a stage starts when the one before it has finished. Reductions are
computed as partials that one task merges in order, so the result has
the bits of the same job run in this process.

``ndstream.store(sources, targets, scheduler=client)`` computes each
source on the cluster into a temporary Zarr array (:func:`computed`) and
writes it into its target from this process, which holds the targets (a
NumPy array, an h5py dataset, a zarr-python array).

Every worker must see the data the job reads and writes: the inputs, the
output and the plan's records kept beside the output (for ``compute``, in
``ndstream.config`` ``temporary_directory``), on a file system they share
or in object storage (``to_zarr("s3://bucket/out.zarr", scheduler=client)``
needs no shared file system when the inputs are in buckets too). Before anything runs, each
worker's memory limit is checked against what its threads may hold at
once (threads x the plan's memory budget per task).

Through Dask this reaches whatever cluster Dask reaches: Slurm, PBS or
SGE with ``dask-jobqueue``, Kubernetes with ``dask-kubernetes``, clouds
with ``dask-cloudprovider``::

    from dask_jobqueue import SLURMCluster
    from dask.distributed import Client
    import ndstream as da

    cluster = SLURMCluster(cores=4, memory="16GB")
    cluster.scale(jobs=10)
    client = Client(cluster)
    x = da.from_zarr("/shared/t2m.zarr")
    (x - x.mean(axis=0)).to_zarr("/shared/anomaly.zarr", scheduler=client)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

from . import _ndstream, config

__all__ = ["check_workers", "compute", "computed", "get_client", "run_plan", "store"]

#: Dask tasks per worker thread and stage (so a slow worker does not hold
#: a stage up, and a lost worker loses little).
PARTS_PER_THREAD = 4


def get_client(scheduler: Any = None) -> Any:
    """The ``Client`` a job should run on, or ``None`` to run it in this
    process: ``scheduler`` if given, else ``ndstream.config``'s."""
    if scheduler is None:
        scheduler = config.get("scheduler")
    else:
        scheduler = config._scheduler(scheduler)
    if scheduler is None or (isinstance(scheduler, str) and scheduler in config.LOCAL_SCHEDULERS):
        return None
    if isinstance(scheduler, str):
        try:
            from distributed import default_client
        except ImportError:
            raise ImportError(
                "scheduler='distributed' needs the dask.distributed package "
                "(pip install 'dask[distributed]')"
            ) from None
        try:
            return default_client()
        except ValueError:
            raise ValueError(
                "scheduler='distributed' but there is no active dask.distributed Client; "
                "create one (Client(...)) or pass scheduler=client"
            ) from None
    return scheduler


def _run_task(
    plan_path: str, stage: int, start: int, end: int, threads: int, text: str | None = None
) -> tuple:
    """One Dask task: ndstream tasks ``start..end`` of ``stage`` (of the plan
    given as its JSON ``text``, where the worker cannot see the file)."""
    return _ndstream.plan_run_task(plan_path, stage, start, end, threads, text)


def _is_url(path: str) -> bool:
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme[:1].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)


def _workers(client: Any) -> dict:
    return client.scheduler_info(n_workers=-1)["workers"]


def _task_budget(client: Any, memory: int | None, workers: dict | None = None) -> int:
    """The memory budget of each task: ``memory`` if given, else the most
    that every worker can give each of its threads (three quarters of
    its limit shared out; the engine's default where workers have none)."""
    if memory is not None:
        return int(memory)
    default = _ndstream.default_memory()
    shares = [
        int(w["memory_limit"]) * 3 // 4 // max(int(w.get("nthreads", 1)), 1)
        for w in (workers if workers is not None else _workers(client)).values()
        if w.get("memory_limit")
    ]
    return max(min([default, *shares]), 1)


def check_workers(client: Any, memory: int, workers: dict | None = None) -> None:
    """Refuse, before anything runs, a cluster whose workers cannot hold
    what their threads may use at once, each running a task under a
    budget of ``memory`` bytes (``MemoryBudgetError`` naming the worker
    and both numbers). ``workers`` is the scheduler's description of
    them, asked for if not given."""
    need_one = int(memory)
    if workers is None:
        workers = _workers(client)
    if not workers:
        raise RuntimeError("the dask.distributed cluster has no workers")
    for addr, w in sorted(workers.items()):
        limit = int(w.get("memory_limit") or 0)
        threads = max(int(w.get("nthreads", 1)), 1)
        need = need_one * threads
        if limit and limit < need:
            raise _ndstream.MemoryBudgetError(
                f"worker {addr} has a memory limit of {_ndstream.human_bytes(limit)} "
                f"({limit} bytes), below the {_ndstream.human_bytes(need)} ({need} bytes) "
                f"its {threads} thread(s) may use at once with a memory budget of "
                f"{_ndstream.human_bytes(need_one)} ({need_one} bytes) per task; lower "
                f"ndstream's memory= or give the workers more memory"
            )


def run_plan(
    client: Any, plan_path: str, stages: list, retries: int = 2, workers: dict | None = None
) -> None:
    """Run every stage of the plan at ``plan_path`` on ``client``'s workers,
    stage after stage, each as a few Dask tasks per worker thread
    (``workers``: the scheduler's description of them, asked for if not
    given)."""
    if workers is None:
        workers = _workers(client)
    threads = sum(max(int(w.get("nthreads", 1)), 1) for w in workers.values())
    # The plan goes to the workers as its text: they need to see the
    # inputs, the output and the work directory, not the plan file.
    with open(plan_path, encoding="utf-8") as f:
        text = client.scatter(f.read(), broadcast=True)
    for s, (_, tasks, _) in enumerate(stages):
        parts = max(min(tasks, threads * PARTS_PER_THREAD), 1)
        bounds = [tasks * i // parts for i in range(parts + 1)]
        ranges = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a] or [(0, tasks)]
        futures = client.map(
            _run_task,
            [plan_path] * len(ranges),
            [s] * len(ranges),
            [a for a, _ in ranges],
            [b for _, b in ranges],
            [1] * len(ranges),
            [text] * len(ranges),
            pure=False,
            retries=retries,
        )
        try:
            client.gather(futures)
        except Exception:
            # The stage's other ranges end (or fail) before the caller
            # removes the records and any staged array they write into.
            from distributed import wait

            wait(futures)
            raise


def store(
    client: Any,
    x: Any,
    path: str,
    *,
    chunks: Any = None,
    codec: str | None = None,
    zarr_format: int = 3,
    attributes: Any = None,
    memory: int | None = None,
    store_root: str | None = None,
    mode: str = "create",
) -> None:
    """Store ``x`` (an ``_ndstream`` array) at ``path`` (a Zarr array, on a
    file system the workers share or in object storage; or an HDF5
    dataset ``file.h5:/x``, a ``.npy`` or raw file on a shared file system,
    which the last task writes from a Zarr array the workers wrote in the
    plan's work directory) on the cluster.
    ``mode`` is ``"create"`` (a new array), ``"overwrite"`` (an array
    that stands on disk is replaced only when the job has finished: the
    workers write the new one beside it, and the last task swaps it in or
    copies it over; a job that fails leaves the old one as it was; one in
    a bucket is replaced in place, as an overwrite there always is) or
    ``"resume"`` (an array an interrupted write left, marked incomplete,
    is finished: of the same layout, it keeps the chunks it has and the
    workers write the rest).
    The plan's records live beside the store (``store_root``, default
    ``path``: a hidden directory there, or a hidden prefix in the bucket)
    while the job runs and are removed when it has finished; the plan file itself stays on
    this machine (the workers get its text)."""
    url = _is_url(path)
    if not url:
        path = os.path.abspath(path)
    root = store_root if store_root is not None else path
    root = root.rstrip("/") if url else os.path.abspath(root)
    workers = _workers(client)
    budget = _task_budget(client, memory, workers)
    # Every task runs under `budget` (the plan refuses a task that needs
    # more), so this refuses before the output is created.
    check_workers(client, budget, workers)
    if url:
        scratch = config.get("temporary_directory")
        local = tempfile.mkdtemp(
            prefix="ndstream-plan-", dir=None if scratch is None or _is_url(scratch) else scratch
        )
        parent = root.rsplit("/", 1)[0] if root.count("/") > 2 else root
        work_dir = (
            f"{parent}/{os.path.basename(local).replace('ndstream-plan-', '.ndstream-plan-')}"
        )
    else:
        parent = os.path.dirname(root.rstrip("/")) or "."
        local = tempfile.mkdtemp(prefix=".ndstream-plan-", dir=parent)
        work_dir = os.path.join(local, "work")
    plan_path = os.path.join(local, "plan.json")
    try:
        stages = _ndstream.plan_tasks(
            x,
            path,
            plan_path,
            chunks=[int(c) for c in chunks] if chunks is not None else None,
            codec=codec,
            zarr_version=zarr_format,
            attributes=json.dumps(attributes) if attributes else None,
            memory=budget,
            work_dir=work_dir,
            mode=mode,
        )
        try:
            run_plan(client, plan_path, stages, workers=workers)
        finally:
            # The records; after a failure also a staged replacement that
            # was never swapped in (the old array stays).
            _ndstream.plan_remove_work(plan_path)
    finally:
        shutil.rmtree(local, ignore_errors=True)


@contextlib.contextmanager
def computed(client: Any, x: Any, memory: int | None = None) -> Iterator[str]:
    """The path of a Zarr array holding ``x`` (an ``_ndstream`` array),
    computed on the cluster into a temporary directory, for the ``with``
    block; the directory is removed when it ends. The directory is made
    in ``ndstream.config``'s ``temporary_directory``: a path every worker
    shares, or a bucket prefix (``s3://bucket/scratch``) where they share
    none."""
    root = config.get("temporary_directory")
    if root is not None and _is_url(root):
        tmp = f"{root.rstrip('/')}/ndstream-compute-{uuid.uuid4().hex}"
    else:
        tmp = tempfile.mkdtemp(prefix="ndstream-compute-", dir=root)
    try:
        path = f"{tmp}/result.zarr" if _is_url(tmp) else os.path.join(tmp, "result.zarr")
        store(client, x, path, memory=memory)
        yield path
    finally:
        if _is_url(tmp):
            _ndstream.remove_temporary(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def compute(client: Any, arrays: list, memory: int | None = None) -> list:
    """The values of ``arrays`` (``_ndstream`` arrays), each computed on the
    cluster into a temporary Zarr array (see :func:`computed`) and read
    back here under the same memory budget (``memory``; the engine's
    default if ``None``)."""
    out = []
    for x in arrays:
        with computed(client, x, memory) as path:
            (value,) = _ndstream.compute([_ndstream.open(path)], memory, None, None)
            out.append(value)
    return out
