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
