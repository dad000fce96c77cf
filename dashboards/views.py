"""The pages of the review dashboard (Streamlit). Data comes from :mod:`.data`, writes go
through :mod:`.actions`; this module only lays things out and wires widgets to callbacks.

Pages: login; collections and runs; an item's shot grid (filters by status and metric
thresholds); a shot (before/after, versions side by side, preview clip, curves, palette,
references, segmentation, decisions, the shot's audit trail); the audit log.

Decisions use ``on_click`` callbacks whose arguments are bound when the page is drawn: the shot
version the reviewer *saw* goes with the decision, so a decision on a shot that changed in the
meantime is refused (optimistic locking) instead of overwriting somebody else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from reel.dashboards import actions, data
from reel.db.reviews import RerunParamsError, ReviewConflict

PAGES = {"overview": "Collections & runs", "item": "Shot grid", "shot": "Shot", "audit": "Audit log",
         "users": "Users (admin)"}
KEEP = "(keep current)"


@dataclass(frozen=True)
class Ctx:
    """What every page needs: catalog URL, folders, and the logged-in user."""

    url: str
    work_dir: Path
    libraries_dir: Path
    user: actions.SessionUser | None


# ------------------------------------------------------------------------------------------
# navigation and messages
# ------------------------------------------------------------------------------------------


def go(page: str, item_id: int | None = None, shot_id: int | None = None) -> None:
    """Switch page (used as an ``on_click`` callback, before the next run draws the page)."""
    st.session_state["nav"] = page
    if item_id is not None:
        st.session_state["item_id"] = int(item_id)
    if shot_id is not None:
        st.session_state["shot_id"] = int(shot_id)


def flash(kind: str, text: str) -> None:
    st.session_state.setdefault("flash", []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)


def sync_query_params() -> None:
    """Mirror the page and ids into the URL (``?page=shot&shot=12``) for links and reloads."""
    qp = {"page": st.session_state.get("nav", "overview")}
    if st.session_state.get("item_id"):
        qp["item"] = str(st.session_state["item_id"])
    if st.session_state.get("shot_id"):
        qp["shot"] = str(st.session_state["shot_id"])
    if dict(st.query_params) != qp:
        st.query_params.from_dict(qp)


def restore_from_query_params() -> None:
    """First run of a session: take page and ids from the URL."""
    if st.session_state.get("_qp_read"):
        return
    st.session_state["_qp_read"] = True
    qp = st.query_params
    if qp.get("page") in PAGES:
        st.session_state["nav"] = qp["page"]
    for key, name in (("item", "item_id"), ("shot", "shot_id")):
        try:
            if qp.get(key):
                st.session_state[name] = int(qp[key])
        except ValueError:
            pass


# ------------------------------------------------------------------------------------------
# login
# ------------------------------------------------------------------------------------------


def login_page(ctx: Ctx) -> None:
    """The only thing shown without a login."""
    st.title("reel review")
    st.caption("Log in with the account an administrator made with `reel users add`.")
    with st.form("login"):
        name = st.text_input("User name", key="login-name")
        password = st.text_input("Password", type="password", key="login-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        user = actions.login(ctx.url, name, password) if name and password else None
        if user is None:
            st.session_state["login_failures"] = st.session_state.get("login_failures", 0) + 1
            if st.session_state["login_failures"] > 5:  # slow down guessing in this session
                import time

                time.sleep(min(10.0, 0.5 * st.session_state["login_failures"]))
            st.error("Unknown user name or wrong password.")
            return
        st.session_state["user"] = user
        st.session_state.pop("login_failures", None)
        st.rerun()


def _logout() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def sidebar(ctx: Ctx) -> str:
    with st.sidebar:
        st.markdown(f"**{ctx.user.name}** · {ctx.user.role}")
        st.button("Log out", key="logout", on_click=_logout)
        pages = [p for p in PAGES if p != "users" or ctx.user.is_admin]
        if st.session_state.get("nav") not in pages:
            st.session_state["nav"] = "overview"
        page = st.radio("Page", pages, format_func=PAGES.get, key="nav")
        if st.session_state.get("item_id"):
            st.caption(f"item id {st.session_state['item_id']}"
                       + (f" · shot id {st.session_state['shot_id']}" if st.session_state.get("shot_id") else ""))
    return page


# ------------------------------------------------------------------------------------------
# collections and runs
# ------------------------------------------------------------------------------------------


def overview_page(ctx: Ctx) -> None:
    st.title("Collections and runs")
    cols = data.collections_overview(ctx.url)
    if not cols:
        st.info("The catalog has no collections yet (reel ingest FILMS --collection NAME).")
        return
    for c in cols:
        with st.container(border=True):
            st.subheader(c.name)
            a, b, d, e = st.columns(4)
            a.metric("items", c.n_items)
            b.metric("shots", c.n_shots)
            d.metric("approved", c.status_counts.get("approved", 0))
            e.metric("flagged", c.status_counts.get("flagged", 0))
            st.progress(c.processed_fraction, text=f"processed {c.processed_fraction:.0%} of shots")
            st.progress(c.approved_fraction, text=f"approved {c.approved_fraction:.0%} of shots")
            counts = " · ".join(f"{k} {v}" for k, v in sorted(c.status_counts.items()))
            st.caption(f"shots by status: {counts or 'none'} · failed items: {c.n_items_failed} · "
                       f"last run: {c.last_run}")
    st.subheader("Items")
    items = data.items_table(ctx.url)
    st.dataframe(items.drop(columns=["id"]), hide_index=True, width="stretch")
    if not items.empty:
        labels = {int(r.id): f"{r.collection} / {r.item}" for r in items.itertuples()}
        pick = st.selectbox("Open the shot grid of", list(labels), format_func=labels.get,
                            key="overview-item")
        st.button("Open shot grid", key="open-item", type="primary",
                  on_click=go, args=("item", pick))
    st.subheader("Recent runs")
    runs = data.runs_table(ctx.url)
    st.dataframe(runs, hide_index=True, width="stretch")
    st.subheader("Failures")
    fails = data.failures_table(ctx.url)
    if fails.empty:
        st.success("Nothing failed.")
    else:
        st.dataframe(fails, hide_index=True, width="stretch")


# ------------------------------------------------------------------------------------------
# an item's shot grid
# ------------------------------------------------------------------------------------------


def _status_badge(status: str) -> None:
    st.badge(status.replace("_", " "), color=data.STATUS_COLORS.get(status, "gray"))


def item_page(ctx: Ctx) -> None:
    items = data.items_table(ctx.url)
    if items.empty:
        st.info("No items in the catalog yet.")
        return
    labels = {int(r.id): f"{r.collection} / {r.item}" for r in items.itertuples()}
    current = st.session_state.get("item_id")
    if current not in labels:
        current = next(iter(labels))
        st.session_state["item_id"] = current
    item_id = st.selectbox("Item", list(labels), index=list(labels).index(current),
                           format_func=labels.get, key=f"item-pick-{current}")
    if item_id != current:
        st.session_state["item_id"] = item_id
        st.session_state.pop("shot_id", None)
    head = data.item_header(ctx.url, item_id)
    st.title(f"{head['collection']} / {head['name']}")
    st.caption(f"item status {head['status']} · {head['n_frames']} frames at {head['fps']} fps · "
               f"{head['n_shots']} shots" + (f" · error: {head['error']}" if head["error"] else ""))
    blockers = head["not_approved"]
    if head["n_shots"] and not blockers:
        st.success("Every shot is approved: `reel deliver` will deliver this item.")
    elif head["n_shots"]:
        st.warning(f"Delivery gate: {len(blockers)} of {head['n_shots']} shots not approved yet.")

    cards = data.shot_cards(ctx.url, ctx.work_dir, item_id)
    statuses = sorted({c.status for c in cards} | {"approved", "flagged", "rejected"})
    with st.expander("Filters", expanded=True):
        f1, f2, f3, f4 = st.columns([3, 3, 2, 2])
        chosen = f1.multiselect("Status", statuses, key="flt-status")
        names = data.metric_names(cards)
        metric = f2.selectbox("Metric", ["(none)"] + names, key="flt-metric")
        lo = f3.number_input("min", value=None, key="flt-min", format="%.4f")
        hi = f4.number_input("max", value=None, key="flt-max", format="%.4f")
        flagged_only = st.checkbox("only shots with flags", key="flt-flagged")
    shown = data.filter_cards(cards, statuses=chosen or None, flagged_only=flagged_only,
                              metric=None if metric == "(none)" else metric, minimum=lo, maximum=hi)
    st.caption(f"{len(shown)} of {len(cards)} shots shown")
    per_row, per_page = 3, 24
    if len(shown) > per_page:  # long films: one page of cards at a time
        n_pages = (len(shown) + per_page - 1) // per_page
        page = st.number_input(f"page (of {n_pages})", 1, n_pages, 1, key="grid-page")
        shown = shown[(page - 1) * per_page:page * per_page]
    for start in range(0, len(shown), per_row):
        row = st.columns(per_row)
        for col, card in zip(row, shown[start:start + per_row]):
            with col.container(border=True):
                _shot_card(card, item_id)


def _shot_card(card: data.ShotCard, item_id: int) -> None:
    st.markdown(f"**Shot {card.index}** · frames {card.start}–{card.stop - 1}"
                + (f" · v{card.output_version}" if card.output_version > 1 else ""))
    _status_badge(card.status)
    a, b = st.columns(2)
    if card.before:
        a.image(str(card.before), caption="before")
    else:
        a.caption("no before thumbnail")
    if card.after:
        b.image(str(card.after), caption="after")
    else:
        b.caption("no after thumbnail")
    if card.flags:
        st.caption("flagged: " + ", ".join(card.flags))
    shown = [f"{k} {card.metrics[k]:.3g}" for k in data.KEY_METRICS if k in card.metrics]
    if shown:
        st.caption(" · ".join(shown))
    st.button(f"Open shot {card.index}", key=f"open-{card.id}", on_click=go,
              args=("shot", item_id, card.id))


# ------------------------------------------------------------------------------------------
# a shot
# ------------------------------------------------------------------------------------------


def shot_page(ctx: Ctx) -> None:
    shot_id = st.session_state.get("shot_id")
    if not shot_id:
        st.info("Choose a shot in the shot grid first.")
        st.button("Go to the shot grid", key="to-grid", on_click=go, args=("item",))
        return
    shot = data.shot_detail(ctx.url, ctx.work_dir, shot_id)
    if shot is None:
        st.error(f"There is no shot with id {shot_id}.")
        return
    st.session_state["item_id"] = shot.item_id
    st.button("← back to the shot grid", key="back-grid", on_click=go, args=("item", shot.item_id))
    st.title(f"{shot.collection} / {shot.item_name} · shot {shot.index}")
    _status_badge(shot.status)
    cur = shot.current
    st.caption(f"frames {shot.start}–{shot.stop - 1} ({shot.stop - shot.start} frames at {shot.fps} fps) · "
               f"output version v{shot.output_version} · record version {shot.version}"
               + (f" · flags: {', '.join(shot.flags)}" if shot.flags else ""))
    if shot.pending_request:
        req = shot.pending_request
        st.info(f"Re-run request #{req['id']} by {req['requested_by']} is {req['status']}: "
                f"{data._short_detail(req['params'])}. The next `reel run` carries it out.")

    _decisions(ctx, shot)

    st.header("Before / after")
    a, b = st.columns(2)
    for col, name, label in ((a, "before.png", "before (source)"), (b, "after.png", f"after (v{cur.version})")):
        path = cur.file(name)
        if path:
            col.image(str(path), caption=label, width="stretch")
        else:
            col.caption(f"{label}: no image in {cur.dir}")

    if len(shot.versions) > 1:
        st.header("Versions")
        vcols = st.columns(len(shot.versions))
        for col, ver in zip(vcols, shot.versions):
            with col.container(border=True):
                st.markdown(f"**v{ver.version}**" + (" (current)" if ver.current else ""))
                after = ver.file("after.png")
                if after:
                    st.image(str(after), width="stretch")
                if ver.request:
                    st.caption(f"made for request #{ver.request['id']} by {ver.request['requested_by']}: "
                               f"{data._short_detail(ver.request['params'])}")
                else:
                    st.caption("first restoration")
                vals = [f"{k} {ver.metrics[k]:.3g}" for k in data.KEY_METRICS if k in ver.metrics]
                st.caption(" · ".join(vals) or "no metrics")

    st.header("Preview clip")
    _preview(cur)

    st.header("Metrics")
    _curves(ctx, shot, cur)

    left, right = st.columns(2)
    with left:
        st.subheader("Palette")
        swatch = cur.file("palette.png")
        if swatch:
            st.image(str(swatch), width="stretch")
        if shot.palettes:
            colors = shot.palettes[-1]["colors"]
            st.html(_swatch_html(colors))
        elif not swatch:
            st.caption("no palette (the shot has no reference)")
    with right:
        st.subheader("Segmentation")
        lab = actions.labelled_overlay(cur.dir)
        if lab is not None:
            img, ids = lab
            st.image(img, caption=f"regions {ids[0]}–{ids[-1]} (ids for regional edits)", width="stretch")
        elif cur.file("overlay.png"):
            st.image(str(cur.file("overlay.png")), width="stretch")
        else:
            st.caption("no segmentation overlay")

    st.subheader("References (ranked)")
    if shot.references:
        rcols = st.columns(min(4, len(shot.references)))
        for i, ref in enumerate(shot.references):
            with rcols[i % len(rcols)]:
                if ref["exists"]:
                    st.image(ref["path"], width="stretch")
                st.caption(f"#{ref['rank']} · score {ref['score']:.3f}"
                           + (" · pinned" if ref["pinned"] else "") + f" · {Path(ref['path']).name}")
    else:
        st.caption("no references ranked for this shot")

    st.header("History")
    st.markdown("**Reviews**")
    if shot.reviews:
        st.dataframe(pd.DataFrame(shot.reviews), hide_index=True, width="stretch")
    else:
        st.caption("not reviewed yet")
    st.markdown("**Re-run requests**")
    reqs = data.rerun_table(ctx.url, shot.id)
    if reqs.empty:
        st.caption("none")
    else:
        st.dataframe(reqs, hide_index=True, width="stretch")
    st.markdown("**Audit log of this shot**")
    st.dataframe(data.audit_table(ctx.url, shot_id=shot.id), hide_index=True, width="stretch")


def _swatch_html(colors: list[dict[str, Any]]) -> str:
    from reel.tasks.colorspace import lab_to_rgb
    import numpy as np

    lab = np.array([c["lab"] for c in colors], np.float32)
    rgb = lab_to_rgb(lab[None, :, 0], lab[None, :, 1:])[0]
    cells = "".join(
        f'<div style="flex:{max(c["weight"], 0.02):.3f};background:#{r:02x}{g:02x}{b:02x};'
        f'height:36px" title="L {c["lab"][0]:.0f} a {c["lab"][1]:.0f} b {c["lab"][2]:.0f} · '
        f'weight {c["weight"]:.2f}"></div>'
        for c, (r, g, b) in zip(colors, rgb.tolist()))
    return f'<div style="display:flex;border:1px solid #ccc">{cells}</div>'


def _preview(ver: data.ShotVersion) -> None:
    clip = actions.preview_path(ver.dir)
    if clip.is_file():
        st.video(str(clip), format="video/mp4", width=640)
        return
    restored = ver.file("restored.mkv")
    if restored is None:
        st.caption(f"no restored shot in {ver.dir}")
        return
    if st.button("Make a preview clip", key=f"preview-{ver.version}"):
        try:
            with st.spinner("encoding the preview…"):
                actions.make_preview(restored, clip)
        except Exception as exc:  # noqa: BLE001 - shown to the reviewer
            st.error(f"could not make the preview: {exc}")
            return
        st.video(str(clip), format="video/mp4", width=640)


def _curves(ctx: Ctx, shot: data.ShotDetail, ver: data.ShotVersion) -> None:
    curves, what = data.per_frame_curves(ver.dir)
    if curves is not None and not curves.empty:
        st.caption(what)
        groups = [[c for c in curves.columns if key in c] for key in data.CURVE_KEYS]
        groups = [g for g in groups if g] or [list(curves.columns)]
        for g in groups:
            st.line_chart(curves[g])
    else:
        st.caption("Per-frame curves are not available for this shot (no per-frame QC file); "
                   "showing the shot's summary metrics from the catalog, one value per run.")
        hist = data.metric_history(ctx.url, shot.id)
        if not hist.empty and len(hist) > 1:
            st.line_chart(hist)
    if ver.metrics:
        st.dataframe(pd.DataFrame(sorted(ver.metrics.items()), columns=["metric", "value"]),
                     hide_index=True, width="stretch")


# ------------------------------------------------------------------------------------------
# decisions
# ------------------------------------------------------------------------------------------


def _user(ctx: Ctx) -> actions.SessionUser:
    if ctx.user is None:  # pragma: no cover - the app never draws pages without a login
        raise PermissionError("not logged in")
    return ctx.user


def _on_approve(ctx: Ctx, shot_id: int, seen: int) -> None:
    try:
        actions.approve(ctx.url, shot_id, _user(ctx), seen)
        flash("success", f"Approved by {_user(ctx).name}.")
    except ReviewConflict as exc:
        flash("error", f"Not saved: {exc}. The page now shows the current state; decide again.")


def _on_reject(ctx: Ctx, shot_id: int, seen: int) -> None:
    note = st.session_state.get(f"reject-note-{shot_id}", "")
    try:
        actions.reject(ctx.url, shot_id, _user(ctx), seen, note)
        flash("success", f"Rejected by {_user(ctx).name}.")
        st.session_state[f"reject-note-{shot_id}"] = ""
    except ReviewConflict as exc:
        flash("error", f"Not saved: {exc}. The page now shows the current state; decide again.")
    except ValueError as exc:
        flash("error", str(exc))


def _rerun_params(shot_id: int, options: dict[str, Any]) -> dict[str, Any]:
    """Build re-run parameters from the form's widget values."""
    ss = st.session_state
    params: dict[str, Any] = {}
    ref = ss.get(f"rr-ref-{shot_id}", KEEP)
    if ref != KEEP:
        params["reference"] = options["refs"][ref]
    pal = ss.get(f"rr-pal-{shot_id}", KEEP)
    if pal != KEEP:
        kind, value = options["palettes"][pal]
        params["palette"] = ({"from_shot": value} if kind == "shot" else
                             {"from_reference": value, "k": int(ss.get(f"rr-pal-k-{shot_id}", 5))})
    if ss.get(f"rr-eng-on-{shot_id}"):
        engines = {stage: ss.get(f"rr-eng-{stage}-{shot_id}", KEEP) for stage in ("colorize", "harmonize")}
        engines = {k: v for k, v in engines.items() if v and v != KEEP}
        if engines:
            params["engines"] = engines
    if ss.get(f"rr-edit-on-{shot_id}"):
        if ss.get(f"rr-edit-kind-{shot_id}", "regions") == "regions":
            region: dict[str, Any] = {"labels": list(ss.get(f"rr-edit-labels-{shot_id}", []))}
        else:
            region = {"box": [float(ss.get(f"rr-edit-{k}-{shot_id}", d))
                              for k, d in (("x0", 0.0), ("y0", 0.0), ("x1", 1.0), ("y1", 1.0))]}
        params["edit"] = {"region": region, "target_rgb": ss.get(f"rr-edit-color-{shot_id}", "#808080"),
                          "strength": float(ss.get(f"rr-edit-strength-{shot_id}", 1.0))}
    return params


def _on_rerun(ctx: Ctx, shot_id: int, seen: int, options: dict[str, Any]) -> None:
    try:
        params = _rerun_params(shot_id, options)
        req = actions.rerun(ctx.url, shot_id, _user(ctx), seen, params,
                            note=st.session_state.get(f"rr-note-{shot_id}"))
        flash("success", f"Re-run request #{req} saved; the next `reel run` carries it out.")
    except ReviewConflict as exc:
        flash("error", f"Not saved: {exc}. The page now shows the current state; decide again.")
    except (RerunParamsError, ValueError) as exc:
        flash("error", f"Not saved: {exc}")


def _on_upload(ctx: Ctx, shot_id: int, collection_id: int) -> None:
    up = st.session_state.get(f"rr-upload-{shot_id}")
    if up is None:
        flash("error", "Choose an image file to upload first.")
        return
    try:
        _ref_id, path = actions.save_reference_upload(ctx.url, ctx.libraries_dir, collection_id,
                                                      up.name, up.getvalue(), _user(ctx))
    except (ValueError, LookupError) as exc:
        flash("error", str(exc))
        return
    st.session_state[f"rr-ref-{shot_id}"] = f"library · {path.name}"
    flash("success", f"{path.name} added to the collection's library and chosen as the reference.")


@st.cache_resource(show_spinner="loading the engine registries…")
def _engine_names() -> dict[str, list[str]]:
    from reel.flows.record import engine_registries

    return {stage: reg.names() for stage, reg in engine_registries().items()}


def _decisions(ctx: Ctx, shot: data.ShotDetail) -> None:
    show_flash()
    seen = shot.version
    st.header("Decision")
    a, b = st.columns([1, 3])
    with a:
        st.button("Approve", key=f"approve-{shot.id}", type="primary", on_click=_on_approve,
                  args=(ctx, shot.id, seen), disabled=shot.status == "approved")
    with b:
        st.text_input("Why reject? (required to reject)", key=f"reject-note-{shot.id}")
        st.button("Reject", key=f"reject-{shot.id}", on_click=_on_reject, args=(ctx, shot.id, seen))

    with st.expander("Re-run with …", expanded=False):
        refs: dict[str, str] = {}
        for r in shot.references:
            refs[f"rank {r['rank']} · {Path(r['path']).name} ({r['score']:.3f})"] = r["path"]
        ranked_paths = set(refs.values())
        for r in data.library_references(ctx.url, shot.collection_id):
            if r["path"] not in ranked_paths:
                refs[f"library · {Path(r['path']).name}"] = r["path"]
        st.selectbox("Reference", [KEEP] + list(refs), key=f"rr-ref-{shot.id}")
        st.file_uploader("… or upload a colour still into the collection's library",
                         type=sorted(s.lstrip(".") for s in actions.IMAGE_SUFFIXES),
                         max_upload_size=actions.MAX_UPLOAD_BYTES // (1024 * 1024),
                         key=f"rr-upload-{shot.id}")
        st.button("Add the upload to the library", key=f"rr-upload-btn-{shot.id}",
                  on_click=_on_upload, args=(ctx, shot.id, shot.collection_id))
        palettes: dict[str, tuple[str, Any]] = {}
        for p in data.palette_sources(ctx.url, shot.item_id, exclude_shot_id=shot.id):
            palettes[f"palette of shot {p['index']}"] = ("shot", p["shot_id"])
        for label, path in refs.items():
            palettes[f"palette from still {Path(path).name}"] = ("reference", path)
        p1, p2 = st.columns([3, 1])
        p1.selectbox("Palette", [KEEP] + list(palettes), key=f"rr-pal-{shot.id}")
        p2.number_input("colours (k)", min_value=2, max_value=12, value=5, key=f"rr-pal-k-{shot.id}")
        if st.checkbox("Change engines", key=f"rr-eng-on-{shot.id}"):
            names = _engine_names()
            e1, e2 = st.columns(2)
            e1.selectbox("Colorization engine", [KEEP] + names.get("colorize", []),
                         key=f"rr-eng-colorize-{shot.id}")
            e2.selectbox("Harmonization engine", [KEEP] + names.get("harmonize", []),
                         key=f"rr-eng-harmonize-{shot.id}")
        if st.checkbox("Regional colour edit", key=f"rr-edit-on-{shot.id}"):
            kind = st.radio("Region", ["regions", "box"], horizontal=True, key=f"rr-edit-kind-{shot.id}",
                            format_func={"regions": "segmentation regions", "box": "rectangle"}.get)
            if kind == "regions":
                lab = actions.labelled_overlay(shot.current.dir)
                ids = lab[1] if lab else []
                st.multiselect("Region ids (see the segmentation image below)", ids,
                               key=f"rr-edit-labels-{shot.id}")
            else:
                c = st.columns(4)
                for col, (k, d) in zip(c, (("x0", 0.0), ("y0", 0.0), ("x1", 1.0), ("y1", 1.0))):
                    col.number_input(f"{k} (fraction)", 0.0, 1.0, d, 0.05, key=f"rr-edit-{k}-{shot.id}")
            e1, e2 = st.columns(2)
            e1.color_picker("Target colour", "#4a7ab5", key=f"rr-edit-color-{shot.id}")
            e2.slider("Strength", 0.05, 1.0, 1.0, 0.05, key=f"rr-edit-strength-{shot.id}")
        st.text_input("Note (optional)", key=f"rr-note-{shot.id}")
        st.button("Request re-run", key=f"rerun-{shot.id}", on_click=_on_rerun,
                  args=(ctx, shot.id, seen, {"refs": refs, "palettes": palettes}))


# ------------------------------------------------------------------------------------------
# audit log
# ------------------------------------------------------------------------------------------


def audit_page(ctx: Ctx) -> None:
    st.title("Audit log")
    st.caption("Who did what and when: decisions, uploads, forced deliveries, and re-run progress.")
    full = data.audit_table(ctx.url)
    people = sorted(set(full["who"])) if not full.empty else []
    who = st.selectbox("Who", ["(everyone)"] + people, key="audit-who")
    table = full if who == "(everyone)" else full[full["who"] == who]
    st.dataframe(table, hide_index=True, width="stretch")


def users_page(ctx: Ctx) -> None:
    """Admins only: who can log in (accounts are made with ``reel users add``)."""
    st.title("Users")
    if ctx.user is None or not ctx.user.is_admin:
        st.error("Only administrators can see this page.")
        return
    st.caption("Add users with `reel users add NAME --role reviewer|admin` on the server.")
    st.dataframe(data.users_table(ctx.url), hide_index=True, width="stretch")
