"""Figures to image files, one path for every caller (the explorers' ``export_image``, the report's PNGs).

Drawn by kaleido in one local Chromium session (``plotly.io.write_images``): ``$BROWSER_PATH``
when set, else :data:`SYSTEM_CHROMIUM` when present, else what kaleido finds. Each file is written
to a temporary name in its folder and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

import plotly.graph_objects as go

#: Chromium that kaleido uses for image exports when $BROWSER_PATH is not set.
SYSTEM_CHROMIUM = "/usr/bin/chromium"
#: Image formats by file suffix.
IMAGE_FORMATS = ("png", "svg", "pdf", "jpeg", "jpg", "webp")


@contextlib.contextmanager
def _browser():
    """``$BROWSER_PATH`` set to :data:`SYSTEM_CHROMIUM` for the block when unset and it exists."""
    if os.environ.get("BROWSER_PATH") or not os.path.exists(SYSTEM_CHROMIUM):
        yield
        return
    os.environ["BROWSER_PATH"] = SYSTEM_CHROMIUM
    try:
        yield
    finally:
        os.environ.pop("BROWSER_PATH", None)


def write_images(figures: Sequence[go.Figure | dict], paths: Sequence[str | os.PathLike], *,
                 scale: float = 2.0) -> list[Path]:
    """Each figure to its path, the format from the path's suffix (:data:`IMAGE_FORMATS`), in one
    Chromium session; each written to a temporary file and renamed. Returns the paths. Raises
    ``ValueError`` naming the path for an unknown suffix or a missing folder (nothing written)."""
    paths = [Path(p) for p in paths]
    if len(paths) != len(figures):
        raise ValueError(f"{len(figures)} figures but {len(paths)} paths")
    kinds = []
    for path in paths:
        kind = path.suffix.lower().lstrip(".")
        if kind not in IMAGE_FORMATS:
            raise ValueError(f"cannot tell the image format from {path.name!r}; end it in .png, .svg or .pdf")
        if not path.parent.is_dir():
            raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
        kinds.append("jpeg" if kind == "jpg" else kind)
    if not paths:
        return []
    import plotly.io as pio

    tmps = [p.parent / f".{p.name}.{os.getpid()}.tmp.{k}" for p, k in zip(paths, kinds)]
    try:
        with _browser():
            pio.write_images([go.Figure(f) for f in figures], tmps, format=kinds, scale=scale)
        for tmp, path in zip(tmps, paths):
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return paths
