"""reel: batch restoration of film and video archives.

The code lives in the design-card folders at the repository root and is installed under this
namespace: ``reel.flows`` (Prefect flows + CLI), ``reel.tasks`` (one module per stage),
``reel.models`` (torch networks), ``reel.db`` (catalog), ``reel.dashboards`` (QC app).
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("reel")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

DISCLOSURE = f"colour is AI-derived by reel {__version__}"
