"""Index a short vector of parameters by a long constant index without blowing up the compiled graph."""

from __future__ import annotations

from typing import Any

import numpy as np


def take_by_index(vector: Any, index: np.ndarray, size: int) -> Any:
    """``vector[index]`` for a stacked parameter vector of length ``size`` and a constant integer ``index``.

    PyTensor rewrites ``stack([a, b, ...])[constant index]`` into one ``MakeVector`` with a scalar input per
    index entry (``local_subtensor_make_vector``): for the 500-subject reference cohort that is a 7,000-input
    node per marker term, whose JAX gradient is 7,000 scalar ops and whose XLA compile took over 18 minutes.
    A product with a constant one-hot matrix gives the same values exactly (x * 1 + 0 * others) as one op.
    """
    import pytensor.tensor as pt

    index = np.asarray(index, dtype=int).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= size):
        raise IndexError(f"index out of range 0..{size - 1}")
    onehot = np.zeros((index.size, size))
    onehot[np.arange(index.size), index] = 1.0
    return pt.dot(onehot, vector)
