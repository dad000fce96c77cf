"""What the review dashboard writes: logins, decisions, uploads, preview clips (no Streamlit).

Every write names the logged-in user and is timestamped in the catalog (``reviews``,
``rerun_requests``, ``events``), so the audit log shows who did what and when. Decisions carry
the shot version the reviewer saw (optimistic locking, :mod:`reel.db.reviews`): a decision on
a shot somebody else changed meanwhile raises :class:`~reel.db.reviews.ReviewConflict`.

Example
-------
>>> safe_file_name("My still (1).JPG")
'My_still_1.jpg'
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from reel.db import models as m
from reel.db.reviews import add_audit_event, request_rerun, review_shot
from reel.db.session import session_scope
from reel.db.users import authenticate

__all__ = [
    "SessionUser",
    "login",
    "approve",
    "reject",
    "rerun",
    "safe_file_name",
    "save_reference_upload",
    "preview_path",
    "make_preview",
    "labelled_overlay",
]

#: Upload size limit for reference stills (bytes).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass(frozen=True)
class SessionUser:
    """The logged-in user as the dashboard keeps it in ``st.session_state``."""

    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == m.UserRole.ADMIN.value


def login(url: str, name: str, password: str) -> SessionUser | None:
    """Check a name and password against the catalog; None when they do not match."""
    with session_scope(url) as db:
        user = authenticate(db, name, password)
        return SessionUser(user.id, user.name, user.role.value) if user else None


def approve(url: str, shot_id: int, user: SessionUser, seen_version: int) -> int:
    """Approve a shot as ``user``; returns the review id."""
    with session_scope(url) as db:
        return review_shot(db, shot_id, user.name, "approve", expected_version=seen_version).id


def reject(url: str, shot_id: int, user: SessionUser, seen_version: int, note: str) -> int:
    """Reject a shot with a note (required); returns the review id."""
    with session_scope(url) as db:
        return review_shot(db, shot_id, user.name, "reject", expected_version=seen_version,
                           note=note).id


def rerun(url: str, shot_id: int, user: SessionUser, seen_version: int, params: dict[str, Any],
          note: str | None = None) -> int:
    """Ask for a re-run of a shot with ``params``; returns the re-run request id."""
    with session_scope(url) as db:
        return request_rerun(db, shot_id, user.name, params, expected_version=seen_version,
                             note=note).id


def safe_file_name(name: str) -> str:
    """A file name of letters, digits, ``.``, ``_`` and ``-`` only (suffix lower-cased)."""
    p = Path(name or "upload")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem).strip("._") or "upload"
    suffix = re.sub(r"[^A-Za-z0-9.]+", "", p.suffix.lower())
    return f"{stem[:80]}{suffix}"


def save_reference_upload(url: str, libraries_dir: Path, collection_id: int, file_name: str,
                          data: bytes, user: SessionUser) -> tuple[int, Path]:
    """Add an uploaded colour still to the collection's library and register it.

    The file goes to ``<libraries_dir>/<collection>/<sha256[:12]>-<name>`` (reel's own copy;
    the archivist's original reference folder is never written), is registered in
    ``reference_images`` (once per content hash) and logged as a ``reference upload`` event.

    Returns
    -------
    (reference id, path)

    Raises
    ------
    ValueError
        Not a readable image, unsupported suffix, or larger than :data:`MAX_UPLOAD_BYTES`.
    """
    import cv2

    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{file_name}: larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    name = safe_file_name(file_name)
    if Path(name).suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{file_name}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{file_name}: not a readable image")
    sha = hashlib.sha256(data).hexdigest()
    with session_scope(url) as db:
        col = db.get(m.Collection, collection_id)
        if col is None:
            raise LookupError(f"no collection with id {collection_id}")
        existing = db.scalar(select(m.ReferenceImage).where(
            m.ReferenceImage.collection_id == collection_id, m.ReferenceImage.sha256 == sha))
        if existing is not None and Path(existing.path).is_file():
            return existing.id, Path(existing.path)
        folder = Path(libraries_dir) / safe_file_name(col.name)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{sha[:12]}-{name}"
        if not dest.is_file():
            tmp = folder / f".{dest.name}.{secrets.token_hex(4)}.part"
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        if existing is not None:
            existing.path = str(dest)
            ref = existing
        else:
            ref = m.ReferenceImage(collection_id=collection_id, path=str(dest.resolve()), sha256=sha,
                                   width=int(img.shape[1]), height=int(img.shape[0]))
            db.add(ref)
            db.flush()
        add_audit_event(db, "reference upload", user.name,
                        detail={"collection": col.name, "reference_id": ref.id, "path": ref.path,
                                "sha256": sha, "original_name": file_name})
        return ref.id, Path(ref.path)


# ------------------------------------------------------------------------------------------
# media shown on the shot page
# ------------------------------------------------------------------------------------------


def preview_path(version_dir: Path) -> Path:
    return Path(version_dir) / "preview.mp4"


def make_preview(restored_path: Path, out_path: Path, *, max_seconds: float = 10.0,
                 max_width_px: int = 640) -> Path:
    """An H.264 MP4 preview (yuv420p, fast start, no audio) of a restored shot, made once.

    At most ``max_seconds`` long and ``max_width_px`` wide (even sizes, area scaling). Written
    under a temporary name and renamed, so two reviewers asking at once do not collide.
    """
    import shutil
    import subprocess

    out_path = Path(out_path)
    if out_path.is_file():
        return out_path
    if not Path(restored_path).is_file():
        raise FileNotFoundError(f"{restored_path} does not exist (was the shot restored?)")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg is not installed (apt-get install ffmpeg)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".{out_path.stem}.{os.getpid()}.{secrets.token_hex(4)}.part.mp4"
    w = int(max_width_px)
    # called directly rather than through reel.tasks.media, whose import pulls in Prefect (seconds)
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-i", str(restored_path), "-t", f"{float(max_seconds):.3f}", "-an",
            "-vf", f"scale='trunc(min({w},iw)/2)*2':-2:flags=area,format=yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-movflags", "+faststart",
            "-map_metadata", "-1", "-f", "mp4", str(tmp)]
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not make the preview of {restored_path}: "
                               f"{proc.stderr.decode('utf-8', 'replace')[-800:]}")
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def labelled_overlay(version_dir: Path) -> tuple[np.ndarray, list[int]] | None:
    """The segmentation overlay with each region's id written at its centre (RGB uint8), and
    the ids, so a reviewer can name regions in a regional edit. None without overlay/labels."""
    import cv2

    d = Path(version_dir)
    if not (d / "overlay.png").is_file() or not (d / "labels.npz").is_file():
        return None
    bgr = cv2.imread(str(d / "overlay.png"), cv2.IMREAD_COLOR)
    with np.load(d / "labels.npz") as npz:
        labels = np.asarray(npz["labels"])
    if bgr is None or labels.ndim != 3 or labels.shape[0] == 0:
        return None
    lab = labels[labels.shape[0] // 2]  # the overlay shows the middle frame
    if lab.shape != bgr.shape[:2]:
        lab = cv2.resize(lab, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_NEAREST)
    # draw the ids on an enlarged copy (analysis-size overlays are small), so the text stays small
    f = max(1, int(np.ceil(480 / bgr.shape[1])))
    if f > 1:
        bgr = cv2.resize(bgr, (bgr.shape[1] * f, bgr.shape[0] * f), interpolation=cv2.INTER_NEAREST)
        lab = cv2.resize(lab, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_NEAREST)
    ids = [int(v) for v in np.unique(lab)]
    for rid in ids:
        ys, xs = np.nonzero(lab == rid)
        if ys.size < 20 * f * f:
            continue
        # a pixel of the region nearest to its median position (inside even for odd shapes)
        my, mx = np.median(ys), np.median(xs)
        k = int(np.argmin((ys - my) ** 2 + (xs - mx) ** 2))
        org = (int(xs[k]) - 6, int(ys[k]) + 6)
        text = str(rid)
        cv2.putText(bgr, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(bgr, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), sorted({int(v) for v in np.unique(labels)})
