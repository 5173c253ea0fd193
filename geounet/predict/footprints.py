"""Where the finished footprints of one raster go: :class:`FootprintSink`.

The vectoriser hands over footprints in batches, in the raster's CRS, while the raster is
streamed (predict) or read (``geounet vectorize``). Each batch is compared with the
buildings already mapped, when there are any (``status`` ``new`` or ``mapped``, see
:mod:`.existing`; ``only_new`` drops the mapped ones), appended to the vector file and drawn
on the ``--preview`` picture. Nothing is in place before :meth:`FootprintSink.commit`: the
picture is rendered under its temporary name first, then every file is renamed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.files import replace_together
from ..io.preview import PreviewWriter
from ..io.vector import VectorWriter
from .existing import BuildingMatcher, ExistingBuildings

__all__ = ["FootprintSink", "open_sink"]


def open_sink(output: Path, raster, raster_path: Path, options, existing: ExistingBuildings | None = None,
              preview: Path | None = None, bands=(1, 2, 3)) -> FootprintSink:
    """The sink of the open ``raster`` (``raster_path``): ``options`` give ``wgs84``, ``only_new`` and
    ``preview_size``; ``existing`` its buildings already mapped, ``preview`` the picture's path (drawn from ``bands``)."""
    matcher = existing.for_raster(raster.crs, raster.bounds) if existing is not None else None
    picture = None if preview is None else PreviewWriter(preview, raster_path, bands, options.preview_size)
    return FootprintSink(output, raster.crs, wgs84=options.wgs84, existing=matcher, only_new=options.only_new,
                         preview=picture)


class FootprintSink:
    """The footprints of one raster to ``output`` (and ``preview``), with their status against ``existing``."""

    def __init__(self, output: Path, crs, *, wgs84: bool = False, existing: BuildingMatcher | None = None,
                 only_new: bool = False, preview: PreviewWriter | None = None):
        self.output = Path(output)
        self.existing, self.only_new, self.preview = existing, only_new, preview
        self.writer = VectorWriter(output, crs, wgs84=wgs84, status=existing is not None)
        self.n_new = self.n_mapped = 0

    @property
    def preview_path(self) -> Path | None:
        return self.preview.path if self.preview is not None else None

    @property
    def count(self) -> int:
        """Footprints written."""
        return self.writer.count

    def write(self, geoms: np.ndarray, area_m2: np.ndarray, score: np.ndarray) -> None:
        """One batch of finished footprints (raster CRS), their ground area and mean probability."""
        mapped = status = None
        if self.existing is not None:
            mapped = self.existing.mapped(geoms)
            self.n_mapped += int(mapped.sum())
            self.n_new += int((~mapped).sum())
            status = np.where(mapped, "mapped", "new").astype(object)
        if self.preview is not None:
            self.preview.add(geoms, mapped)
        if self.only_new and mapped is not None:
            keep = ~mapped
            geoms, area_m2, score, status = geoms[keep], area_m2[keep], score[keep], status[keep]
        self.writer.write(geoms, area_m2, score, status)

    def finish(self) -> list[tuple[Path, Path]]:
        """Write every file under its temporary name (render the picture, if any); returns the
        ``(temporary, final)`` pairs to rename together (:func:`geounet.io.files.replace_together`)."""
        moves = [(self.writer.finish(), self.output)]
        if self.preview is not None:
            self.preview.render()
            moves.append((self.preview.tmp, self.preview.path))
        return moves

    def commit(self) -> None:
        """Put every file in place, all or none."""
        try:
            replace_together(self.finish())
        finally:
            self.abort()

    def abort(self) -> None:
        self.writer.abort()
        if self.preview is not None:
            self.preview.abort()
