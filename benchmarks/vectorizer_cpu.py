"""CPU time of the vectoriser's thread inside a whole `geounet predict` (docs/benchmarks.md, "Stage 1 in two passes").

    python benchmarks/vectorizer_cpu.py RASTER OUT.gpkg [LABEL] [-- extra predict options]

Wraps ``StripVectorizer.add_rows`` and ``finish`` with ``time.thread_time`` (CPU time of the calling
thread: predict's writer thread) and runs predict in this process with its default settings; prints one
line on stderr: wall time, the vectoriser thread's CPU time, the process's CPU time. To compare two
commits, run it alternately with ``PYTHONPATH`` set to each checkout, machine alone.
"""

from __future__ import annotations

import sys
import time

from geounet.cli import cli
from geounet.vectorize import stream


def main() -> None:
    raster, out = sys.argv[1], sys.argv[2]
    label = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "--" else ""
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    spent = {"add_rows": 0.0, "finish": 0.0}
    for name in spent:
        method = getattr(stream.StripVectorizer, name)

        def timed(self, *args, _method=method, _name=name, **kwargs):
            t = time.thread_time()
            try:
                return _method(self, *args, **kwargs)
            finally:
                spent[_name] += time.thread_time() - t

        setattr(stream.StripVectorizer, name, timed)
    t0 = time.time()
    cli.main(["-q", "predict", raster, "-o", out, "--overwrite", *extra], standalone_mode=False)
    print(f"{label} wall {time.time() - t0:.1f} s, vectoriser thread CPU {sum(spent.values()):.2f} s "
          f"(add_rows {spent['add_rows']:.2f}, finish {spent['finish']:.2f}), process CPU {time.process_time():.1f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
