"""Bytes fetched by ``geounet predict`` from a Cloud-Optimised GeoTIFF served over HTTP.

Makes a COG from a local raster (JPEG, 512 px blocks, overviews, internal mask), serves it on
127.0.0.1 with the range-answering, byte-counting server of the tests (tests/range_server.py),
runs ``geounet predict URL`` in a child process and prints the bytes served against the file's
size, the number of requests and the time::

    python benchmarks/remote_bytes.py ../shared/data/banepa/banepa.tif
    python benchmarks/remote_bytes.py ../shared/data/banepa/banepa.tif --pixel-size 0.2  # through a WarpedVRT
    python benchmarks/remote_bytes.py ../shared/data/banepa/banepa.tif --vrt  # a local VRT over the URL

``--vrt`` predicts a local VRT file whose source is the URL: it also runs on versions of geounet
that refuse URLs (the way the 26.6 MB figure of issue 10 was measured). Any other option is passed
to ``geounet predict``. Extra GDAL configuration for experiments goes in the environment
(``GDAL_HTTP_MULTIRANGE=SERIAL python benchmarks/remote_bytes.py ...``): options geounet sets
itself win over it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rasterio
from rasterio.shutil import copy as rio_copy

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from range_server import RangeServer  # noqa: E402

sys.path.insert(0, str(HERE.parent))
from bench_predict import machine  # noqa: E402


def make_cog(src: Path, dst: Path) -> Path:
    """``src`` as a COG: JPEG (YCbCr for 3 bands), 512 px blocks, overviews, its validity mask kept internal."""
    with rasterio.open(src) as s:
        ycbcr = s.count == 3 and s.dtypes[0] == "uint8"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        rio_copy(src, dst, driver="COG", compress="JPEG" if ycbcr else "DEFLATE", blocksize=512)
    return dst


_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
               "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def vrt_over(url: str, path: Path) -> Path:
    """A VRT file reading every band (and the mask) of the raster at ``url``."""
    with rasterio.open(url) as s:
        t, w, h = s.transform, s.width, s.height
        bands = "".join(
            f'<VRTRasterBand dataType="{_GDAL_TYPES[s.dtypes[i - 1]]}" band="{i}">'
            f"<SimpleSource><SourceFilename>/vsicurl/{url}</SourceFilename><SourceBand>{i}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/><DstRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f"</SimpleSource></VRTRasterBand>"
            for i in s.indexes
        )
        mask = (
            '<MaskBand><VRTRasterBand dataType="Byte"><SimpleSource>'
            f"<SourceFilename>/vsicurl/{url}</SourceFilename><SourceBand>mask,1</SourceBand>"
            "</SimpleSource></VRTRasterBand></MaskBand>"
        )
        path.write_text(
            f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}"><SRS>{s.crs.to_wkt()}</SRS>'
            f"<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>{bands}{mask}</VRTDataset>"
        )
    return path


def tiny_model(path: Path) -> Path:
    """A width-4 U-Net (zero weights, logits -5: no building) with the default model's depth, outputs and
    preprocessing."""
    import torch

    from geounet.config import ModelConfig
    from geounet.model import build_model, checkpoint

    _, info = checkpoint.load_model(None)
    cfg = ModelConfig(**{**info.model.__dict__, "width": 4})
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.head.bias.fill_(-5.0)
    checkpoint.save_checkpoint(path, checkpoint.checkpoint_dict(model, cfg, info.preprocessing))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raster", type=Path, help="local raster to serve (converted to a COG unless --as-is)")
    ap.add_argument("--as-is", action="store_true", help="serve the file itself, not a COG made from it")
    ap.add_argument("--vrt", action="store_true", help="predict a local VRT over the URL")
    ap.add_argument("--tiny-model", action="store_true",
                    help="predict with a width-4 U-Net that finds nothing and has the default model's bands, depth, "
                         "tile and pixel size: the same windows and reads, much less arithmetic (for a busy CPU)")
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose geounet runs (default: this one)")
    args, predict_args = ap.parse_known_args()
    shown = " ".join(predict_args + (["(--tiny-model)"] if args.tiny_model else []))
    with tempfile.TemporaryDirectory(prefix="geounet-remote-") as tmp:
        tmp = Path(tmp)
        served = tmp / "served"
        served.mkdir()
        cog = served / "image.tif"
        if args.as_is:
            cog.symlink_to(args.raster.resolve())
        else:
            make_cog(args.raster, cog)
        size = cog.stat().st_size
        with RangeServer(served) as server:
            url = server.url("image.tif")
            inp = str(vrt_over(url, tmp / "image.vrt")) if args.vrt else url
            if args.tiny_model:
                predict_args += ["--model", str(tiny_model(tmp / "tiny.pt"))]
            server.reset()
            cmd = [sys.executable, "-m", "geounet", "-q", "predict", inp, "-o", str(tmp / "out.geojson"),
                   *predict_args]
            env = dict(os.environ, PYTHONPATH=str(args.repo.resolve()), NO_ALBUMENTATIONS_UPDATE="1")
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            fetched, requests = server.bytes_served, server.requests
        if proc.returncode:
            sys.exit(f"predict failed ({proc.returncode}): {proc.stderr.strip()}")
    ranges = sum(len(r[2] or []) for r in requests)
    print(f"machine: {machine()}")
    print(f"command: geounet predict {'VRT over ' if args.vrt else ''}URL {shown}")
    print(f"file {size / 1e6:.2f} MB; fetched {fetched / 1e6:.2f} MB ({fetched / size:.2f}x the file) "
          f"in {len(requests)} requests ({ranges} ranges); {seconds:.1f} s")


if __name__ == "__main__":
    main()
