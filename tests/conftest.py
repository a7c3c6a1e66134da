"""Shared test set-up: repository paths and small real-data slices."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest



def _absl_handler_on_real_stderr() -> None:
    """absl (imported by JAX / orbax) creates a logging handler bound to the ``sys.stderr`` of its import time,
    which under pytest is the capture buffer. Hydra's ``logging.config.dictConfig`` (every in-process app run)
    closes every live handler, and absl's ``close()`` closes its stream unless it is a real std stream: that
    closes pytest's capture buffer and kills the session. Bind the handler to the real stderr instead."""
    try:
        from absl import logging as absl_logging
    except ImportError:  # pragma: no cover - absl comes with JAX
        return
    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


_absl_handler_on_real_stderr()

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
