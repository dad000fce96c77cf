"""Network tests run on one CPU thread: faster on the shared 2-core machine (notes 004 §8.2)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def overfit():
    """``overfit(net, loss_fn, batch, steps, lr)``: Adam on one fixed batch.

    Returns the per-step losses and the per-step named loss parts (for "a few steps reduce
    the loss" tests).
    """
    import torch

    def run(net, loss_fn, batch, steps: int = 12, lr: float = 3e-3):
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        losses, parts = [], []
        for _ in range(steps):
            opt.zero_grad()
            loss, p = loss_fn(net, batch)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            parts.append(p)
        return losses, parts

    return run
