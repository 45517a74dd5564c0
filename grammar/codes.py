"""Signed binary codes: the one addressing scheme shared by the construction (neural/) and the proofs (formal/)."""
from __future__ import annotations

import math

import numpy as np


def sbin(j, k: int) -> np.ndarray:
    """sbin(j) = 2*bin_k(j) - 1, least significant bit first: (..., k) array of +-1."""
    j = np.asarray(j, dtype=np.int64)
    bits = (j[..., None] >> np.arange(k)) & 1
    return np.where(bits == 1, 1.0, -1.0)


def code_width(count: int) -> int:
    """Bits needed for codes 0..count-1 (at least 1)."""
    return max(1, math.ceil(math.log2(max(count, 2))))
