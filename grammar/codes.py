"""Signed binary codes: the one addressing scheme shared by the construction (neural/) and the proofs (formal/)."""
from __future__ import annotations

import math

import numpy as np


def sbin(j, k: int) -> np.ndarray:
    """sbin(j) = 2*bin_k(j) - 1, least significant bit first: (..., k) array of +-1."""
    j = np.asarray(j, dtype=np.int64)
    if k <= 31 and (j.size == 0 or (j.min() >= 0 and j.max() < 2 ** 31)):
        j = j.astype(np.int32)  # half the memory traffic: an 8N-row position table is 10^7 entries at N = 65,536
    out = ((j[..., None] >> np.arange(k, dtype=j.dtype)) & 1).astype(np.float64)
    out *= 2.0
    out -= 1.0
    return out


def code_width(count: int) -> int:
    """Bits needed for codes 0..count-1 (at least 1)."""
    return max(1, math.ceil(math.log2(max(count, 2))))
