"""The CLI without Prefect: help texts, ingest (good and bad films), status, errors that guide."""

from __future__ import annotations

import subprocess

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from reel.flows.cli import app

runner = CliRunner()


def _text(result) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _clip(path, seconds=1, size="64x48"):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=25:duration={seconds}", "-c:v", "ffv1",
                    str(path)], check=True)
    return path


@pytest.mark.parametrize("command", [[], ["init"], ["ingest"], ["run"], ["status"], ["probe"],
                                     ["engines"], ["demo"], ["db", "upgrade"], ["samples", "fetch"]])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_ingest_registers_good_films_and_reports_bad_ones(reel_home, tmp_path):
    from reel.db import models as m
    from reel.db.session import session_scope
    from reel.tasks.media import sha256_file

    films = tmp_path / "films"
    films.mkdir()
    good = _clip(films / "good.mkv")
    bad = films / "broken.mp4"
    bad.write_bytes(b"not a film at all")
    before = {p.name: sha256_file(p) for p in (good, bad)}

    result = runner.invoke(app, ["ingest", str(films), "--collection", "c1"])
    # a bad file makes the command fail (exit 2) but the good film is registered
    assert result.exit_code == 2, result.output
    assert "broken" in _text(result) and "good" in _text(result)
    with session_scope(reel_home.database_url) as db:
        items = db.scalars(select(m.Item)).all()
        assert [i.name for i in items] == ["good"]
        assert items[0].source_sha256 == before["good.mkv"]
        assert items[0].n_frames == 25 and items[0].fps == "25/1"
        events = {e.event_type for e in db.scalars(select(m.Event))}
        assert {"ingestion", "message digest calculation"} <= events
    # originals untouched
    assert {p.name: sha256_file(p) for p in (good, bad)} == before

    # ingesting again skips what is registered
    result = runner.invoke(app, ["ingest", str(good), "--collection", "c1"])
    assert result.exit_code == 0 and "already registered" in _text(result)

    result = runner.invoke(app, ["status", "c1"])
    assert result.exit_code == 0 and "good" in result.output


def test_errors_say_what_to_do(reel_home, tmp_path):
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "--collection", "c"])
    assert result.exit_code == 1
    assert "does not exist" in _text(result) and "what to do" in _text(result)

    result = runner.invoke(app, ["run", "nope"])
    assert result.exit_code == 1 and "reel ingest" in _text(result)

    result = runner.invoke(app, ["run", "nope", "--colorizer", "magic"])
    assert result.exit_code == 1 and "exemplar-propagate" in _text(result)


def test_engines_lists_registries(reel_home):
    result = runner.invoke(app, ["engines"])
    assert result.exit_code == 0
    for name in ("archival", "slic-flow", "luma-layout", "exemplar-propagate", "palette-stats"):
        assert name in result.output


def test_prefect_defaults_are_set_before_prefect_reads_its_settings(tmp_path):
    """Prefect reads its settings when first imported: importing the CLI must already give
    the ephemeral server reel's home and its 180 s start-up timeout (a 20 s default made
    `make demo` fail on a loaded machine)."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["REEL_HOME"] = str(tmp_path / "home")
    code = ("import reel.flows.cli, prefect.settings as p; "
            "print(p.PREFECT_HOME.value()); "
            "print(p.PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(tmp_path / "home" / "prefect"), "180"]
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"   # the user's value wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[1] == "300"
