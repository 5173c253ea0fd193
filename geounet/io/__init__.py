"""Files in and out: rasters (:mod:`.raster`), the ``--probs`` GeoTIFF (:mod:`.probs`), building
polygons (:mod:`.vector`), and the atomic-write helpers both writers share (:mod:`.files`).

Everything that touches GDAL, OGR or the file system for predict lives here, below the
library modules that use it (predict, vectorize, train); nothing here imports them. The
temporary names and the writability probe are a module of their own (not part of
``vector.py``) because the probabilities writer needs them too.
"""
