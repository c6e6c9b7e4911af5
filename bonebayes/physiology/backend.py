"""Array back-ends for the physics: one implementation, evaluated by NumPy or built into a PyTensor graph.

The physiology modules are written against the small :class:`Ops` interface below. ``NUMPY`` evaluates
eagerly (fast projections over many posterior draws, tests against scipy); ``PYTENSOR`` builds a symbolic
graph that PyMC differentiates and nutpie compiles. Only the few primitives that differ between the two
libraries live here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Ops:
    """The primitives the physics uses, bound to one array library."""

    name: str
    exp: Callable[[Any], Any]
    expm1: Callable[[Any], Any]
    log: Callable[[Any], Any]
    log1p: Callable[[Any], Any]
    abs: Callable[[Any], Any]
    minimum: Callable[[Any, Any], Any]
    maximum: Callable[[Any, Any], Any]
    where: Callable[[Any, Any, Any], Any]
    stack: Callable[..., Any]
    concatenate: Callable[..., Any]
    sum: Callable[..., Any]
    as_array: Callable[[Any], Any]
    ones: Callable[..., Any]
    zeros: Callable[..., Any]
    scan: Callable[..., Any]

    def is_symbolic(self) -> bool:
        return self.name == "pytensor"


def _numpy_scan(step: Callable[..., tuple], sequences: Sequence[Any], init: Sequence[Any]) -> list[Any]:
    """Loop ``step(*seq_j, *carry) -> carry`` over the leading axis; return stacked carries (J, ...)."""
    carry = tuple(init)
    outs: list[list[Any]] = [[] for _ in carry]
    n = len(sequences[0])
    for j in range(n):
        carry = tuple(step(*(s[j] for s in sequences), *carry))
        for k, c in enumerate(carry):
            outs[k].append(c)
    return [np.stack(o) for o in outs]


NUMPY = Ops(
    name="numpy",
    exp=np.exp,
    expm1=np.expm1,
    log=np.log,
    log1p=np.log1p,
    abs=np.abs,
    minimum=np.minimum,
    maximum=np.maximum,
    where=np.where,
    stack=np.stack,
    concatenate=np.concatenate,
    sum=np.sum,
    as_array=np.asarray,
    ones=np.ones,
    zeros=np.zeros,
    scan=_numpy_scan,
)


def _pytensor_ops() -> Ops:
    import pytensor
    import pytensor.tensor as pt

    def scan(step: Callable[..., tuple], sequences: Sequence[Any], init: Sequence[Any]) -> list[Any]:
        outputs, _ = pytensor.scan(
            fn=lambda *args: list(step(*args)),
            sequences=list(sequences),
            outputs_info=list(init),
            strict=False,
        )
        return list(outputs) if isinstance(outputs, list | tuple) else [outputs]

    return Ops(
        name="pytensor",
        exp=pt.exp,
        expm1=pt.expm1,
        log=pt.log,
        log1p=pt.log1p,
        abs=pt.abs,
        minimum=pt.minimum,
        maximum=pt.maximum,
        where=pt.switch,
        stack=pt.stack,
        concatenate=pt.concatenate,
        sum=pt.sum,
        as_array=pt.as_tensor_variable,
        ones=pt.ones,
        zeros=pt.zeros,
        scan=scan,
    )


_CACHE: dict[str, Ops] = {"numpy": NUMPY}


def get_ops(name: str = "numpy") -> Ops:
    """Return the :class:`Ops` for ``"numpy"`` or ``"pytensor"``."""
    if name not in _CACHE:
        if name != "pytensor":
            raise ValueError(f"unknown array back-end {name!r}; valid: 'numpy', 'pytensor'")
        _CACHE[name] = _pytensor_ops()
    return _CACHE[name]
