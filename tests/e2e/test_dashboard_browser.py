"""End to end in a real browser: Debian's Chromium, driven by Playwright, against ``streamlit
run`` of the review dashboard over a seeded SQLite catalog.

Log in, open the shot grid, open a shot, approve it; check the catalog row; save a screenshot
under ``test-output/`` (gitignored). Needs ``apt-get install chromium`` (``make test`` does it)
and the dev extra's ``playwright`` (``playwright install`` is not used: no browser download).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "dashboards"))

from dashboard_seed import PASSWORDS, seed_catalog  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUTPUT = ROOT / "test-output"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy in {timeout_s} s")


@pytest.fixture
def dashboard(tmp_path):
    """The seeded catalog and a running ``streamlit run`` of the app on a free port."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' installs playwright")
    from reel.db.session import dispose_engines
    from reel.flows.review import streamlit_command

    home = tmp_path / "home"
    seeded = seed_catalog(home)
    dispose_engines()
    port = _free_port()
    env = {**os.environ, "REEL_HOME": str(home), "REEL_DATABASE_URL": seeded.url,
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(streamlit_command("127.0.0.1", port), env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield seeded, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        dispose_engines()


@pytest.mark.slow
def test_log_in_open_a_shot_approve_it_in_chromium(dashboard, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from reel.db import models as m
    from reel.db.session import session_scope

    seeded, url = dashboard
    shot_id = seeded.shot_ids[1]
    OUTPUT.mkdir(exist_ok=True)
    profile = tmp_path / "chromium-profile"  # new, empty user-data-dir
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            # expect() has its own 5 s default, which page.set_default_timeout does not change;
            # a fresh Streamlit process's first script run (imports, catalog queries) can take
            # longer than that on a loaded 2-core machine (seen once in a fresh-clone make test)
            expect.set_options(timeout=60_000)
            page.goto(url)
            # nothing but the login form before logging in
            expect(page.get_by_role("button", name="Log in")).to_be_visible()
            expect(page.get_by_text("Collections and runs")).to_have_count(0)
            page.get_by_label("User name").fill("ana")
            page.get_by_label("Password", exact=True).fill(PASSWORDS["ana"])
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Collections and runs")).to_be_visible()

            page.get_by_role("button", name="Open shot grid").click()
            expect(page.get_by_role("button", name="Open shot 1")).to_be_visible()
            page.get_by_role("button", name="Open shot 1").click()
            expect(page.get_by_role("heading", name="newsreels / reel-1 · shot 1")).to_be_visible()
            expect(page.get_by_text("after (v1)")).to_be_visible()

            # the preview clip is made on demand and plays in Chromium (H.264 MP4)
            page.get_by_role("button", name="Make a preview clip").click()
            video = page.locator("video")
            expect(video).to_have_count(1)
            page.wait_for_function("document.querySelector('video').readyState >= 1")
            assert page.evaluate("document.querySelector('video').duration") == pytest.approx(0.5, abs=0.05)

            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_text("Approved by ana.")).to_be_visible()
            expect(page.get_by_role("button", name="Approve")).to_be_disabled()
            assert "page=shot" in page.url and f"shot={shot_id}" in page.url
            # Streamlit scrolls inside its own container, so a tall viewport shows the whole page
            page.set_viewport_size({"width": 1400, "height": 3200})
            page.wait_for_timeout(1500)  # let images and charts settle before the screenshot
            shot_png = OUTPUT / "dashboard-shot-approved.png"
            page.screenshot(path=str(shot_png), full_page=True)
        finally:
            browser.close()

    assert shot_png.stat().st_size > 10_000
    with session_scope(seeded.url) as db:
        shot = db.get(m.Shot, shot_id)
        assert shot.status is m.ShotStatus.APPROVED
        (review,) = shot.reviews
        assert review.reviewer == "ana" and review.decision is m.ReviewDecision.APPROVE
        event = db.scalar(select(m.Event).where(m.Event.shot_id == shot_id,
                                                m.Event.event_type == "quality review"))
        assert event.agent == "ana"
        others = [db.get(m.Shot, sid).status for sid in seeded.shot_ids if sid != shot_id]
        assert m.ShotStatus.APPROVED not in others
