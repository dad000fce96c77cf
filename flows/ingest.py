"""Register films and reference stills in a collection.

For each film: probe it, compute its sha256 and a video framemd5 (stored under
``<home>/fixity/``), and record it with ``ingestion`` and ``message digest calculation``
events. Originals are opened read-only and never copied or changed. A file that is not a
readable film is reported and skipped; the others are still registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2

from reel.config import Settings
from reel.db.api import ensure_schema
from reel.flows import record
from reel.tasks import media

FILM_SUFFIXES = {".mkv", ".mp4", ".mov", ".avi", ".ogv", ".ogg", ".mxf", ".webm", ".m4v", ".mpg",
                 ".mpeg", ".dv", ".ts", ".y4m"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


class IngestError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class IngestReport:
    registered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    references_added: int = 0
    lines: list[str] = field(default_factory=list)


def find_films(path: Path) -> list[Path]:
    """A single file, or every file with a film suffix under a folder (sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILM_SUFFIXES)
    raise IngestError(f"{path} does not exist", "give the path of a film or of a folder of films")


def ingest_path(s: Settings, path: Path, collection: str, *, references_dir: Path | None = None,
                ground_truth_dir: Path | None = None, progress=None) -> IngestReport:
    """Register every film under ``path`` (and the stills in ``references_dir``) in ``collection``."""
    films = find_films(path)
    if not films:
        raise IngestError(f"no films found under {path}",
                          f"films need one of the suffixes {', '.join(sorted(FILM_SUFFIXES))}")
    if references_dir is not None and not Path(references_dir).is_dir():
        raise IngestError(f"reference folder {references_dir} does not exist",
                          "pass a folder of colour stills with --references, or leave it out")
    ensure_schema(s.database_url)
    fixity_dir = s.home / "fixity"
    fixity_dir.mkdir(parents=True, exist_ok=True)
    col_id = record.get_or_create_collection(
        s, collection, Path(references_dir).resolve() if references_dir else None)
    report = IngestReport()

    task = progress.add_task(f"ingest {collection}", total=len(films)) if progress else None
    for film in films:
        film = film.resolve()
        name = film.stem
        try:
            existing = record.find_item(s, col_id, name)
            if existing is not None:
                sha = media.sha256_file(film)
                if sha != existing[1]:
                    raise IngestError(
                        f"{film.name}: a different file named {name!r} is already registered",
                        "rename the film, or ingest it into another collection")
                report.skipped.append(name)
                report.lines.append(f"  = {name}: already registered")
                continue
            info = media.probe(film)
            sha = media.sha256_file(film)
            fmd5 = media.write_framemd5(film, fixity_dir / f"{sha}.framemd5")
            gt = _ground_truth_for(film, ground_truth_dir)
            record.add_item(s, col_id, name=name, source_path=film, sha256=sha, framemd5_path=fmd5,
                            info=info.to_dict(), ground_truth_path=gt)
            report.registered.append(name)
            report.lines.append(f"  + {name}: {info.width}x{info.height}, {info.n_frames} frames "
                                f"at {info.fps} fps, sha256 {sha[:16]}…")
        except (media.MediaError, IngestError, OSError) as exc:
            report.failed.append(name)
            report.lines.append(f"  ! {film}: {exc}")
        finally:
            if progress:
                progress.advance(task)

    if references_dir is not None:
        for img in sorted(p for p in Path(references_dir).iterdir()
                          if p.suffix.lower() in IMAGE_SUFFIXES):
            arr = cv2.imread(str(img), cv2.IMREAD_COLOR)
            if arr is None:
                report.lines.append(f"  ! reference {img.name}: not a readable image, skipped")
                continue
            if record.add_reference(s, col_id, img.resolve(), media.sha256_file(img),
                                    arr.shape[1], arr.shape[0]):
                report.references_added += 1
        report.lines.append(f"  {report.references_added} reference still(s) added")
    return report


def _ground_truth_for(film: Path, gt_dir: Path | None) -> Path | None:
    if gt_dir is None:
        return None
    matches = sorted(p for p in Path(gt_dir).iterdir() if p.stem == film.stem)
    return matches[0].resolve() if matches else None
