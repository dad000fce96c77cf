"""reel review: the QC dashboard (Streamlit). Start it with ``reel review``.

It serves on 127.0.0.1 and reads/writes the catalog of reel's settings (``REEL_DATABASE_URL``
or ``<REEL_HOME>/reel.db``; SQLite or PostgreSQL). Nothing is shown before a login; every
decision is stored with the user's name and time. Pages live in :mod:`reel.dashboards.views`.
"""

from __future__ import annotations

import streamlit as st

from reel.config import get_settings
from reel.dashboards import views
from reel.db.api import ensure_schema


@st.cache_resource(show_spinner=False)
def _migrated(url: str) -> str:
    """Bring the catalog to the current schema once per server process."""
    return ensure_schema(url)


def main() -> None:
    st.set_page_config(page_title="reel review", page_icon=":film_frames:", layout="wide")
    s = get_settings()
    _migrated(s.database_url)
    ctx = views.Ctx(url=s.database_url, work_dir=s.work_dir, libraries_dir=s.libraries_dir,
                    user=st.session_state.get("user"))
    views.restore_from_query_params()
    if ctx.user is None:
        views.login_page(ctx)
        return
    page = views.sidebar(ctx)
    {"overview": views.overview_page, "item": views.item_page, "shot": views.shot_page,
     "audit": views.audit_page, "users": views.users_page}[page](ctx)
    views.sync_query_params()


main()
