"""pytest set-up for the CPU tests: Julia's thread count, and a seeded generator per test."""

import os
import zlib

import numpy as np
import pytest

os.environ.setdefault("JULIA_NUM_THREADS", "2")


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))  # reproducible per test
