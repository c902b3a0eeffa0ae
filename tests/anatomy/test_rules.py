"""The side rule shared by phantoms and real scans."""

from __future__ import annotations

import pytest

from brain3d.anatomy.rules import BILATERAL_MIN_FRACTION, side_from_shares


@pytest.mark.parametrize("left, right, side", [
    (1.0, 0.0, "left"),
    (0.0, 1.0, "right"),
    (0.9, 0.1, "left"),                       # 10% across the midline is still one-sided
    (0.1, 0.9, "right"),
    (BILATERAL_MIN_FRACTION, 1 - BILATERAL_MIN_FRACTION, "bilateral"),  # the threshold itself is bilateral
    (0.5, 0.5, "bilateral"),
    (0.6, 0.4, "bilateral"),
])
def test_side_from_shares(left, right, side):
    assert side_from_shares(left, right) == side
