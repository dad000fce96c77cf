"""One typed settings object for reel.

Values come, in increasing priority, from the defaults below, a TOML file (``reel.toml`` in the
working directory, or the path in ``REEL_CONFIG``) and environment variables prefixed ``REEL_``
(e.g. ``REEL_DATABASE_URL``, ``REEL_HOME``, ``REEL_ENGINES__COLORIZE=gray``).

Example
-------
>>> from reel.config import Settings
>>> s = Settings(home="/tmp/reel-doc")
>>> s.database_url
'sqlite:////tmp/reel-doc/reel.db'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class EngineChoice(BaseModel):
    """Which engine each stage uses (names from the stage registries)."""

    shots: str = "archival"
    segment: str = "slic-flow"
    #: "fused": luma-layout + EfficientNet-Lite0 embeddings when installed (else luma-layout alone).
    references: str = "fused"
    colorize: str = "exemplar-propagate"
    #: "palette-stats" (per-region chroma pulled toward the palette, shot-constant) is the default:
    #: "temporal-stats" (masked Lab transfer, temporally smoothed) combined with the across-shots
    #: pass damaged one shot of the end-to-end test film (PSNR 23.6 dB vs truth) when no person
    #: masks were found; choose it with REEL_ENGINES__HARMONIZE=temporal-stats.
    harmonize: str = "palette-stats"
    #: Fusion of regional colour edits across the region border (reel.tasks.fusers).
    fuse: str = "guided"
    #: Luminance deflicker of the whole film before the per-shot stages (reel.tasks.deflicker):
    #: "luma-ratio" changes only shots that measurably flicker; "none" reads the source as is.
    deflicker: str = "luma-ratio"


class ProcessingParams(BaseModel):
    """Knobs shared by several stages."""

    #: Width (pixels) at which analysis (matching, flow, segmentation) runs; outputs stay full size.
    analysis_width_px: int = 320
    #: Shortest shot the detector may produce, in frames.
    min_shot_frames: int = 8
    #: How many ranked references each shot keeps.
    references_top_k: int = 3
    #: Shots of an item whose signatures are closer than this (average-linkage cosine distance)
    #: share pooled references (shots.reference_cluster); 0 = every shot alone.
    reference_cluster_distance: float = 0.3
    #: Person region in the segmentation (MediaPipe selfie segmentation): None = when installed.
    person_masks: bool | None = None
    #: Palette size (k-means in Lab).
    palette_k: int = 5
    #: Seed for every random choice (k-means init, sampling) so outputs are deterministic.
    seed: int = 0
    #: Deinterlace interlaced sources (ffmpeg idet or the stream's field order) with bwdif into
    #: a normalised intermediate before restoration; off: interlaced frames are kept woven.
    deinterlace: bool = False
    #: QC flag thresholds overriding reel.tasks.qc.DEFAULT_THRESHOLDS (same keys), e.g.
    #: REEL_PROCESSING__QC_THRESHOLDS='{"max_cdc": 0.08}'.
    qc_thresholds: dict[str, float] = Field(default_factory=dict)
    #: Film-level pass between colorization and harmonization: one bounded chroma gain/offset
    #: per shot reducing colour jumps at same-scene cuts (reel.tasks.harmonize.plan_film_chroma).
    harmonize_across_shots: bool = True
    #: torch.set_num_threads for learned engines and training (0: torch's default). On a shared
    #: CPU 1 thread per process is often faster (models/device.py apply_threads).
    torch_threads: int = 0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REEL_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    #: Root of everything reel writes (catalog, MLflow, work files, deliverables, samples).
    home: Path = Field(default=Path("var"))
    database_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: Path | None = None
    mlflow_experiment: str = "reel"
    #: Thread-pool size of the Prefect task runner (shots processed in parallel).
    max_workers: int = 2
    #: Task runner: "threads" (thread pool of max_workers) or "dask" (a local Dask cluster of
    #: max_workers processes, or the existing cluster at dask_address): flows/runners.py.
    runner: str = "threads"
    #: Existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies runner "dask").
    dask_address: str | None = None
    #: Reuse finished per-shot stage results across runs (content-addressed, flows/cache.py).
    cache: bool = True
    engines: EngineChoice = Field(default_factory=EngineChoice)
    processing: ProcessingParams = Field(default_factory=ProcessingParams)

    @model_validator(mode="after")
    def _derive_paths(self) -> "Settings":
        self.home = Path(self.home).expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'reel.db'}"
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if self.mlflow_artifact_root is None:
            self.mlflow_artifact_root = self.home / "mlartifacts"
        self.mlflow_artifact_root = Path(self.mlflow_artifact_root).expanduser().resolve()
        return self

    # Folders under home ---------------------------------------------------------------------
    @property
    def work_dir(self) -> Path:
        """Per-shot intermediate files (restored shots, masks, thumbnails)."""
        return self.home / "work"

    @property
    def deliverables_dir(self) -> Path:
        return self.home / "deliverables"

    @property
    def samples_dir(self) -> Path:
        return self.home / "samples"

    @property
    def libraries_dir(self) -> Path:
        """Reference libraries copied in at ingest, one folder per collection."""
        return self.home / "libraries"

    def ensure_dirs(self) -> None:
        for d in (self.home, self.work_dir, self.deliverables_dir, self.samples_dir,
                  self.libraries_dir, self.mlflow_artifact_root):
            d.mkdir(parents=True, exist_ok=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("REEL_CONFIG", "reel.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)


class _SettingsHolder:
    """Holds the process's settings: built once from env/file, replaceable by ``configure``."""

    current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings (built on first use from defaults, file and environment)."""
    if _SettingsHolder.current is None:
        _SettingsHolder.current = Settings()
    return _SettingsHolder.current


def configure(**overrides: Any) -> Settings:
    """Rebuild the settings with ``overrides`` on top of file and environment (CLI options)."""
    _SettingsHolder.current = Settings(**overrides)
    return _SettingsHolder.current


def reset_settings() -> None:
    """Forget the current settings; the next ``get_settings()`` reads env and file again."""
    _SettingsHolder.current = None
