# reel worker image: the CLI, Prefect worker, Dask scheduler/worker and MLflow server of
# deploy/compose.yaml all run from it.
#
#   docker build -f deploy/worker.Dockerfile -t reel-worker:cpu .                       # CPU torch
#   docker build -f deploy/worker.Dockerfile --build-arg TORCH_VARIANT=cuda -t reel-worker:cuda .
#
# TORCH_VARIANT=cpu installs the pinned torch from PyTorch's CPU wheel index (~200 MB, no CUDA);
# TORCH_VARIANT=cuda installs the same pinned version from PyPI, whose Linux wheels bundle the
# CUDA runtime (the host needs only the NVIDIA driver and the NVIDIA container toolkit).
# Build from the repository root (the context must hold pyproject.toml and the package folders).
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REEL_HOME=/srv/reel

# ffmpeg/ffprobe (FFV1, ProRes, x264) and MediaConch from Debian; tini reaps ffmpeg children
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg mediaconch tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && ffmpeg -hide_banner -encoders | grep -q ffv1

# torch first (its own layer, the largest): the exact pin of pyproject.toml
RUN if [ "$TORCH_VARIANT" = "cpu" ]; then \
      pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CPU_INDEX}"; \
    elif [ "$TORCH_VARIANT" = "cuda" ]; then \
      pip install "torch==${TORCH_VERSION}"; \
    else echo "TORCH_VARIANT must be cpu or cuda" >&2; exit 1; fi

WORKDIR /opt/reel
COPY pyproject.toml README.md ./
COPY reel/ reel/
COPY flows/ flows/
COPY tasks/ tasks/
COPY models/ models/
COPY db/ db/
COPY dashboards/ dashboards/
# the MediaConch policy of the master lives in the repository, not in the package
COPY deploy/mediaconch/ deploy/mediaconch/
ENV REEL_MEDIACONCH_POLICY=/opt/reel/deploy/mediaconch/reel-ffv1-master.xml
# reel itself (not editable); torch is already satisfied. scenedetect-headless without
# dependencies keeps opencv-contrib's cv2 (as `make install` does).
RUN pip install . \
 && pip install --no-deps scenedetect-headless==0.7.2 \
 && python -c "import reel, torch, cv2; print('reel', reel.__version__, 'torch', torch.__version__)" \
 && reel --help > /dev/null

RUN useradd --create-home --uid 1000 reel \
 && mkdir -p /srv/reel /srv/mlartifacts /archive \
 && chown -R reel:reel /srv/reel /srv/mlartifacts
USER reel
WORKDIR /srv/reel

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["reel", "--help"]
