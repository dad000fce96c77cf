"""deploy/: compose stack, worker image, Prefect deployment file and SLURM example, checked as
files (no Docker engine or SLURM here): services, ports, volumes, health, wiring of settings."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
REEL_SERVICES = ("dask-scheduler", "dask-worker-cpu", "dask-worker-gpu", "prefect-worker",
                 "reel-init", "reel")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def _expand(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults (what `docker compose config` gives)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _cmd(svc: dict) -> list[str]:
    c = svc.get("command") or []
    return c.split() if isinstance(c, str) else [str(x) for x in c]


def _opt(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_compose_services_ports_volumes_health(compose):
    svcs = compose["services"]
    assert {"postgres", "prefect-server", "mlflow", "dask-scheduler", "dask-worker-cpu",
            "dask-worker-gpu", "prefect-worker"} <= set(svcs)
    # published host ports are unique
    host_ports = [str(p).rsplit(":", 1)[0].rsplit(":", 1)[-1]
                  for s in svcs.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert {"4200", "5000", "5432", "8786", "8787"} <= set(host_ports)
    # named volumes are declared; bind-mounted files exist
    declared = set(compose["volumes"])
    for name, s in svcs.items():
        for v in s.get("volumes", []):
            src = _expand(v).split(":")[0]
            if src.startswith((".", "/")):
                if src.startswith("./postgres"):
                    assert (DEPLOY / src).is_file(), f"{name}: {src} missing"
            else:
                assert src in declared, f"{name}: volume {src} not declared"
    # health checks on the servers; depends_on only on services that exist, and service_healthy
    # only on services with a health check
    for name in ("postgres", "prefect-server", "mlflow", "dask-scheduler"):
        assert svcs[name].get("healthcheck", {}).get("test"), name
    for name, s in svcs.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            assert dep in svcs, f"{name} depends on unknown {dep}"
            if cond.get("condition") == "service_healthy":
                assert "healthcheck" in svcs[dep], f"{name} waits for health of {dep}"
    assert svcs["prefect-worker"]["depends_on"]["reel-init"]["condition"] == \
        "service_completed_successfully"
    # the PostgreSQL init script is valid shell and creates the databases the URLs use
    subprocess.run(["bash", "-n", str(DEPLOY / "postgres" / "init-databases.sh")], check=True)


def test_compose_env_consistency(compose, monkeypatch):
    from reel.config import Settings
    from reel.flows.deploy import DEFAULT_POOL

    svcs = compose["services"]
    pg = _env(svcs["postgres"])
    databases = {pg["POSTGRES_DB"], *pg["REEL_EXTRA_DATABASES"].split()}
    assert databases == {"reel", "mlflow", "prefect"}
    password = _expand(pg["POSTGRES_PASSWORD"])

    # every database URL anywhere (env or command line) points at the postgres service
    urls = []
    for name, s in svcs.items():
        for v in list(_env(s).values()) + _cmd(s):
            if v.startswith("postgresql"):
                urls.append((name, urlsplit(_expand(v))))
    assert len(urls) >= 5
    for name, u in urls:
        assert (u.hostname, u.port, u.username, u.password) == ("postgres", 5432, pg["POSTGRES_USER"],
                                                                password), name
        assert u.path.lstrip("/") in databases, (name, u.path)
    assert urlsplit(_expand(_env(svcs["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"])
                    ).scheme == "postgresql+asyncpg"
    assert urlsplit(_expand(_opt(_cmd(svcs["mlflow"]), "--backend-store-uri"))).path == "/mlflow"

    prefect_port = int(_opt(_cmd(svcs["prefect-server"]), "--port"))
    mlflow_cmd = _cmd(svcs["mlflow"])
    mlflow_port = int(_opt(mlflow_cmd, "--port"))
    sched_port = int(_opt(_cmd(svcs["dask-scheduler"]), "--port"))
    artifact_dest = _opt(mlflow_cmd, "--artifacts-destination")
    assert any(_expand(v).split(":")[1] == artifact_dest for v in svcs["mlflow"]["volumes"])
    assert "mlflow" in _opt(mlflow_cmd, "--allowed-hosts").split(",")

    envs = {n: _env(svcs[n]) for n in REEL_SERVICES}
    first = envs["prefect-worker"]
    for name, env in envs.items():
        for key in ("REEL_DATABASE_URL", "REEL_MLFLOW_TRACKING_URI", "REEL_DASK_ADDRESS",
                    "PREFECT_API_URL", "REEL_HOME", "REEL_MLFLOW_ARTIFACT_ROOT"):
            assert env[key] == first[key], (name, key)
        mounts = {_expand(v).split(":")[1] for v in svcs[name].get("volumes", [])}
        if name != "dask-scheduler":  # the scheduler never touches files
            assert env["REEL_HOME"] in mounts and env["REEL_MLFLOW_ARTIFACT_ROOT"] in mounts, name
    api = urlsplit(first["PREFECT_API_URL"])
    assert (api.hostname, api.port, api.path) == ("prefect-server", prefect_port, "/api")
    ml = urlsplit(first["REEL_MLFLOW_TRACKING_URI"])
    assert (ml.hostname, ml.port) == ("mlflow", mlflow_port)
    assert first["REEL_MLFLOW_ARTIFACT_ROOT"] == artifact_dest
    dask = urlsplit(first["REEL_DASK_ADDRESS"])
    assert (dask.scheme, dask.hostname, dask.port) == ("tcp", "dask-scheduler", sched_port)

    # reel reads these variables into the settings it will use
    for key, value in first.items():
        if key.startswith("REEL_"):
            monkeypatch.setenv(key, _expand(value))
    s = Settings()
    assert s.database_url == _expand(first["REEL_DATABASE_URL"])
    assert s.mlflow_tracking_uri == "http://mlflow:5000" and str(s.home) == "/srv/reel"
    assert s.dask_address == first["REEL_DASK_ADDRESS"] and s.runner == "dask"

    # Dask workers join the scheduler; the GPU one reserves an NVIDIA GPU and says so to Dask
    for name in ("dask-worker-cpu", "dask-worker-gpu"):
        assert _cmd(svcs[name])[:3] == ["dask", "worker", first["REEL_DASK_ADDRESS"]]
    gpu = svcs["dask-worker-gpu"]
    assert _opt(_cmd(gpu), "--resources") == "GPU=1"
    assert "--resources" not in _cmd(svcs["dask-worker-cpu"])
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["build"]["args"]["TORCH_VARIANT"] == "cuda"
    # the Prefect worker serves the pool `reel deploy` registers on (process type)
    wcmd = _cmd(svcs["prefect-worker"])
    assert _opt(wcmd, "--pool") == DEFAULT_POOL and _opt(wcmd, "--type") == "process"
    assert f"--pool {DEFAULT_POOL}" in " ".join(_cmd(svcs["reel-init"]))


def test_worker_dockerfile_installs_ffmpeg_and_reel():
    text = (DEPLOY / "worker.Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert re.search(r"apt-get install[^\n]*\n?[^\n]*\bffmpeg\b", text)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    torch_pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("torch=="))
    assert f"ARG TORCH_VERSION={torch_pin.split('==')[1]}" in text
    assert "download.pytorch.org/whl/cpu" in text and "TORCH_VARIANT=cpu" in text
    assert '"$TORCH_VARIANT" = "cuda"' in text
    assert re.search(r"RUN pip install \.( |\\|$)", text, re.M)
    # every package folder of pyproject is copied into the image
    for folder in set(pyproject["tool"]["setuptools"]["package-dir"].values()):
        assert f"COPY {folder}/ {folder}/" in text, folder
    assert "COPY pyproject.toml" in text
    assert "REEL_MEDIACONCH_POLICY" in text and "COPY deploy/mediaconch/" in text


def test_prefect_yaml_matches_reel_deploy():
    from prefect.flows import Flow
    from prefect.utilities.importtools import import_object

    from reel.flows import deploy as d

    spec = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    assert spec["prefect-version"] == "3.8.8"
    deps = {x["name"]: x for x in spec["deployments"]}
    nightly = deps[d.NIGHTLY_DEPLOYMENT]
    assert nightly["work_pool"]["name"] == d.DEFAULT_POOL
    assert nightly["schedules"] == [{"cron": d.DEFAULT_CRON, "timezone": d.DEFAULT_TIMEZONE,
                                     "active": True}]
    assert nightly["concurrency_limit"] == 1
    assert deps[d.RESTORE_DEPLOYMENT]["work_pool"]["name"] == d.DEFAULT_POOL
    for name, x in deps.items():  # module-path entrypoints that import as flows
        obj = import_object(x["entrypoint"])
        assert isinstance(obj, Flow), name
    assert import_object(nightly["entrypoint"]).name == "nightly"


def _load_slurm():
    spec = importlib.util.spec_from_file_location("reel_slurm", DEPLOY / "slurm" / "reel_slurm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_slurm_example(monkeypatch):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["optional-dependencies"]["cluster"] == ["dask-jobqueue==0.9.0"]
    subprocess.run(["bash", "-n", str(DEPLOY / "slurm" / "reel-run.sbatch")], check=True)
    sbatch = (DEPLOY / "slurm" / "reel-run.sbatch").read_text()
    assert "#SBATCH" in sbatch and "reel_slurm.py" in sbatch

    mod = _load_slurm()
    monkeypatch.setenv("REEL_DATABASE_URL", "postgresql+psycopg://reel:pw@db:5432/reel")
    args = mod.parse_args(["newsreels", "--jobs", "3", "--gpus-per-job", "1", "--queue", "gpu",
                           "--interface", "ib0", "--prologue", "source /srv/venv/bin/activate"])
    kw = mod.cluster_kwargs(args)
    assert kw["job_extra_directives"] == ["--gres=gpu:1"]
    assert kw["worker_extra_args"] == ["--resources", "GPU=1"]
    assert kw["queue"] == "gpu" and kw["interface"] == "ib0" and kw["processes"] == 1
    assert kw["job_script_prologue"][0] == "source /srv/venv/bin/activate"
    assert "export REEL_DATABASE_URL=postgresql+psycopg://reel:pw@db:5432/reel" in \
        kw["job_script_prologue"]
    assert mod.reel_command(args, "tcp://10.0.0.1:8786") == [
        "reel", "run", "newsreels", "--dask-address", "tcp://10.0.0.1:8786"]
    cpu = mod.cluster_kwargs(mod.parse_args(["x"]))
    assert cpu["job_extra_directives"] == [] and cpu["worker_extra_args"] == []
    assert mod.reel_command(mod.parse_args(["--queue-run"]), "tcp://h:1") == ["reel", "queue", "run"]
    with pytest.raises(SystemExit):
        mod.parse_args([])

    # with dask-jobqueue installed (the `cluster` extra), render the real job script
    if importlib.util.find_spec("dask_jobqueue") is None:
        pytest.skip("dask-jobqueue not installed (pip install '.[cluster]'); kwargs checked only")
    from dask_jobqueue import SLURMCluster

    kw.pop("interface")
    kw["scheduler_options"].pop("interface")
    with SLURMCluster(**kw) as cluster:
        script = cluster.job_script()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -p gpu" in script
    assert "--resources GPU=1" in script and "source /srv/venv/bin/activate" in script


def test_reel_deploy_refuses_a_bad_schedule_before_contacting_prefect(reel_home):
    from typer.testing import CliRunner

    from reel.flows.cli import app
    from reel.flows.deploy import DeployError, _check_schedule

    assert _check_schedule("0 2 * * *", "Europe/Berlin").timezone == "Europe/Berlin"
    with pytest.raises(DeployError, match="invalid schedule"):
        _check_schedule("not a cron", "UTC")
    with pytest.raises(DeployError, match="invalid schedule"):
        _check_schedule("0 2 * * *", "Mars/Olympus")
    r = CliRunner().invoke(app, ["deploy", "--cron", "61 2 * * *"])
    assert r.exit_code == 1 and "invalid schedule" in r.output and "--timezone" in r.output
