"""Where a ``geounet predict`` command's wall time goes: start-up, model phase, tail, exit.

    python benchmarks/predict_timeline.py [--repeat 2] [--final-gc] -- predict /tmp/geounet-bench/r5000.tif -o /tmp/x.gpkg

Runs the console script (``geounet.cli.main``, as ``geounet`` does) in a child process, with marks
(``time.time()``) at: the driver imported (Python, torch, the library), ``predict_raster`` entered,
the first model call, the end of the last model call, the writer joined and the outputs renamed
(``_Run._commit`` done), and the command returned. The parent takes the child's start and end
itself, so "exit" is what the interpreter does after the command: atexit handlers, the final
garbage collection, module teardown (``--final-gc``: every other run keeps the final collection that
the console script skips, ``gc.freeze`` at exit, for a side-by-side comparison). An existing output is removed before each run. Prints a
Markdown table (seconds per phase, one row per run). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
PHASES = [  # (name, from mark, to mark)
    ("start-up", "spawn", "predict_raster"),
    ("model phase", "first_model_call", "last_model_call"),
    ("tail (finish, commit, rename)", "last_model_call", "committed"),
    ("exit", "returned", "end"),
    ("command", "spawn", "end"),
]


def child(argv: list[str], final_gc: bool) -> None:
    marks: dict[str, float] = {}
    if final_gc:  # drop the console script's atexit gc.freeze: the interpreter's last collection runs again
        import atexit
        import gc

        register = atexit.register
        atexit.register = lambda f, *a, **k: f if f is gc.freeze else register(f, *a, **k)
    import geounet.predict.batch as batch
    import geounet.predict.driver as driver

    marks["imported"] = time.time()
    predict_raster, run_predict, run_commit = driver.predict_raster, driver._Run._predict, driver._Run._commit

    def timed_predict_raster(*a, **k):
        marks.setdefault("predict_raster", time.time())
        return predict_raster(*a, **k)

    def timed_predict(self, *a):
        marks.setdefault("first_model_call", time.time())
        out = run_predict(self, *a)
        marks["last_model_call"] = time.time()
        return out

    def timed_commit(self):
        out = run_commit(self)
        marks["committed"] = time.time()
        return out

    driver.predict_raster = batch.predict_raster = timed_predict_raster
    driver._Run._predict, driver._Run._commit = timed_predict, timed_commit
    from geounet.cli import main

    sys.argv = ["geounet", *argv]
    try:
        main()  # exits through SystemExit, so the console script's atexit handlers run as they do for users
    finally:
        marks["returned"] = time.time()
        print("MARKS " + json.dumps(marks), file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--final-gc", action="store_true",
                    help="interleave runs that keep the interpreter's final garbage collection (before gc.freeze)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then geounet's arguments (predict ... -o OUT)")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    out = command[command.index("-o") + 1] if "-o" in command else None
    print("| run | final gc | " + " | ".join(name for name, _, _ in PHASES) + " |")
    print("|" + " --- |" * (len(PHASES) + 2))
    runs = [(k, g) for k in range(args.repeat) for g in ((True, False) if args.final_gc else (False,))]
    for k, final_gc in runs:
        if out and os.path.isfile(out):
            os.remove(out)
        spawn = time.time()
        res = subprocess.run([sys.executable, str(HERE), "--child", str(int(final_gc)), *command], capture_output=True, text=True)
        end = time.time()
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("MARKS ")]
        if res.returncode != 0 or not lines:
            print(res.stderr, file=sys.stderr)
            return 1
        marks = dict(json.loads(lines[-1][6:]), spawn=spawn, end=end)
        cells = [f"{marks[b] - marks[a]:.2f}" if a in marks and b in marks else "" for _, a, b in PHASES]
        print(f"| {k + 1} | {'yes' if final_gc else 'no (default)'} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[3:], final_gc=sys.argv[2] == "1")
    else:
        sys.exit(main())
