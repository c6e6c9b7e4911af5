"""Figures for the report: matplotlib figures -> deterministic PNG bytes -> ``data:`` URIs.

The same figure always gives the same bytes: PNG metadata is stripped (no Software or creation-time
chunks), the Agg renderer is used, and SVG hash salts are fixed (in case a caller renders SVG), so two
reports built from the same configuration and seeds embed identical images.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

DPI = 100

_RC = {
    "svg.hashsalt": "bonebayes-report",
    "path.simplify": True,
    "figure.max_open_warning": 0,
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
}


@dataclass(frozen=True)
class Figure:
    """One embedded figure: a ``data:image/png;base64,...`` URI, its pixel size and a caption."""

    uri: str
    width: int
    height: int
    caption: str = ""
    alt: str = ""


@contextmanager
def deterministic_style() -> Iterator[None]:
    """matplotlib settings under which the report draws its figures (the user's own settings are restored)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield


def png_bytes(fig: Any, dpi: int = DPI) -> bytes:
    """The figure as PNG without metadata chunks (deterministic), then closed."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    try:
        FigureCanvasAgg(fig)  # render with Agg whatever the user's backend is
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def embed(fig: Any, caption: str = "", alt: str = "", dpi: int = DPI) -> Figure:
    """A matplotlib figure as an embedded :class:`Figure` (the figure is closed)."""
    data = png_bytes(fig, dpi)
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the PNG's IHDR chunk
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return Figure(uri, w, h, caption, alt or caption)
