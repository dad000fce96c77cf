"""One Prefect test harness (ephemeral API on a throwaway database) for all flow tests.

Imported lazily so collecting unit tests does not pay for Prefect's server import.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def lavfi_film():
    """Factory: ``make(path, sources, gray=False)`` writes an FFV1 (yuv420p) film of ffmpeg's
    lavfi test ``sources`` (160x90, 25 fps, 1.2 s = 30 frames each) cut one after the other
    (cuts every 30 frames), without colour when ``gray``; returns ``path``."""
    import subprocess

    def make(path, sources=("testsrc2", "smptebars"), gray=False):
        inputs = []
        for src in sources:
            inputs += ["-f", "lavfi", "-i", f"{src}=size=160x90:rate=25:duration=1.2"]
        graph = ("".join(f"[{i}:v]" for i in range(len(sources)))
                 + f"concat=n={len(sources)}:v=1" + (",hue=s=0" if gray else "") + "[v]")
        subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph,
                        "-map", "[v]", "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(path)],
                       check=True)
        return path

    return make
