#!/usr/bin/env python
"""Restore a collection on a SLURM cluster: Dask workers as SLURM jobs, reel as the driver.

dask-jobqueue's ``SLURMCluster`` starts a Dask scheduler in this process and submits one SLURM
job per Dask worker (``--jobs``); ``reel run COLLECTION --dask-address <scheduler>`` (or
``reel queue run`` with ``--queue``) then sends every per-shot task to those workers. GPU jobs
ask SLURM for a GPU (``--gres=gpu:N``) and tell Dask that the worker holds ``GPU=N``, so GPU
stages land only there; the Prefect ``gpu`` concurrency limit (``reel init --gpus``) must match
the GPUs of all jobs together.

Needs ``pip install 'reel[cluster]'`` (dask-jobqueue), a shared filesystem mounted at the same
path on every node (REEL_HOME, the archive, MLflow artifacts), and PostgreSQL for the catalog
(SQLite's WAL does not work across nodes). Run it from the login node, or as a small job of its
own (``reel-run.sbatch``). ``--dry-run`` prints the worker job script without submitting it.

Example
-------
    python deploy/slurm/reel_slurm.py newsreels --jobs 4 --gpus-per-job 1 --queue gpu \\
        --cores 8 --memory 64GiB --walltime 04:00:00 --prologue 'source /srv/reel/venv/bin/activate'
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("collection", nargs="?", help="collection to restore (omit with --queue)")
    p.add_argument("--queue-run", "--nightly", dest="queue_run", action="store_true",
                   help="process the reel queue (reel queue run) instead of one collection")
    p.add_argument("--jobs", type=int, default=2, help="SLURM jobs = Dask workers (default 2)")
    p.add_argument("--adapt", action="store_true",
                   help="scale between 0 and --jobs workers with the load instead of a fixed count")
    p.add_argument("--cores", type=int, default=4, help="CPU cores per job")
    p.add_argument("--memory", default="16GiB", help="memory per job, e.g. 64GiB")
    p.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per job (--gres=gpu:N)")
    p.add_argument("--queue", dest="partition", default=None, help="SLURM partition")
    p.add_argument("--account", default=None, help="SLURM account")
    p.add_argument("--walltime", default="04:00:00", help="job time limit HH:MM:SS")
    p.add_argument("--interface", default=None,
                   help="network interface the scheduler and workers listen on (e.g. ib0); "
                        "default: the host's, which may not be reachable from compute nodes")
    p.add_argument("--prologue", action="append", default=[],
                   help="shell line run before the worker starts (repeatable), e.g. "
                        "'source /srv/reel/venv/bin/activate'")
    p.add_argument("--local-directory", default=None,
                   help="node-local scratch for worker spill files (default: $TMPDIR)")
    p.add_argument("--wait-workers", type=float, default=600.0,
                   help="seconds to wait for the first worker to join (jobs may queue)")
    p.add_argument("--dry-run", action="store_true", help="print the job script, submit nothing")
    p.add_argument("--reel", default="reel", help="the reel command (default: reel on PATH)")
    p.add_argument("--python", default=sys.executable,
                   help="python of the worker jobs (default: this one; the path must exist on "
                        "the compute nodes, e.g. a venv on the shared filesystem)")
    args = p.parse_args(argv)
    if not args.queue_run and not args.collection:
        p.error("give a COLLECTION, or --queue-run to process the reel queue")
    return args


def cluster_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments of ``SLURMCluster`` for these options (one Dask worker per job)."""
    gpus = int(args.gpus_per_job)
    kw: dict = dict(
        cores=int(args.cores), processes=1, memory=args.memory, walltime=args.walltime,
        # one worker process per job; its threads = cores; torch threads set by reel per task
        job_extra_directives=[f"--gres=gpu:{gpus}"] if gpus else [],
        worker_extra_args=["--resources", f"GPU={gpus}"] if gpus else [],
        job_script_prologue=list(args.prologue)
        + [f"export {k}={shlex.quote(os.environ[k])}" for k in _FORWARDED if k in os.environ],
        scheduler_options={"dashboard_address": ":8787"},
        job_name="reel-dask",
        python=args.python,
    )
    if args.partition:
        kw["queue"] = args.partition
    if args.account:
        kw["account"] = args.account
    if args.interface:
        kw["interface"] = args.interface
        kw["scheduler_options"]["interface"] = args.interface
    if args.local_directory:
        kw["local_directory"] = args.local_directory
    return kw


#: Settings the worker jobs need to see like the driver (forwarded into the job script).
_FORWARDED = ("REEL_HOME", "REEL_DATABASE_URL", "REEL_MLFLOW_TRACKING_URI",
              "REEL_MLFLOW_ARTIFACT_ROOT", "PREFECT_API_URL", "REEL_CONFIG")


def reel_command(args: argparse.Namespace, address: str) -> list[str]:
    """The reel command line the driver runs against the cluster at ``address``."""
    if args.queue_run:
        return [args.reel, "queue", "run"]  # the address comes from REEL_DASK_ADDRESS
    return [args.reel, "run", args.collection, "--dask-address", address]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        print("dask-jobqueue is missing: pip install 'reel[cluster]'", file=sys.stderr)
        return 2
    from distributed import Client

    with SLURMCluster(**cluster_kwargs(args)) as cluster:
        if args.dry_run:
            print(cluster.job_script())
            return 0
        if args.adapt:
            cluster.adapt(minimum=0, maximum=args.jobs)
        else:
            cluster.scale(jobs=args.jobs)
        address = cluster.scheduler_address
        print(f"Dask scheduler {address}, dashboard {cluster.dashboard_link}; "
              f"{args.jobs} SLURM job(s) requested", flush=True)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=args.wait_workers)
        env = {**os.environ, "REEL_DASK_ADDRESS": address, "REEL_RUNNER": "dask"}
        cmd = reel_command(args, address)
        print("running:", shlex.join(cmd), flush=True)
        return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
