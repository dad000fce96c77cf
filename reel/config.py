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
    references: str = "luma-layout"
    colorize: str = "exemplar-propagate"
    harmonize: str = "palette-stats"


class ProcessingParams(BaseModel):
    """Knobs shared by several stages."""

    #: Width (pixels) at which analysis (matching, flow, segmentation) runs; outputs stay full size.
    analysis_width_px: int = 320
    #: Shortest shot the detector may produce, in frames.
    min_shot_frames: int = 8
    #: How many ranked references each shot keeps.
    references_top_k: int = 3
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
