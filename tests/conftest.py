"""Fixtures shared by the whole suite.

- ``shared_data``: ``../shared/data`` beside the checkout (CI clones the repository next to
  it), failing loudly, never skipping, when it is missing;
- ``faithful``: the Old Faithful data as a (272, 2) float array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bayesgmm.datasets import load_faithful
from tests.helpers import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared test data missing: expected {SHARED_DATA} (../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def faithful() -> np.ndarray:
    return load_faithful().to_numpy()
