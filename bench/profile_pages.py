#!/usr/bin/env python3
"""What runs on each page's rerun: every dashboard page under cProfile, in Streamlit's AppTest.

    ECI_DATA=DIR ECI_ENCODER=hashing python bench/profile_pages.py [--top 15] [--rounds 2]

Runs ``app.py`` once (load, score: not profiled), then switches to every page ``--rounds`` times
and prints, per visit, the wall time of the script run and the functions with the largest
cumulative time (this repository's code and pandas/numpy/plotly calls). The browser's share
(sending and drawing) is not included: ``bench/bench_scale.py`` measures that.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [
    "pages/margins.py",
    "pages/signal_vs_safety.py",
    "pages/projection.py",
    "pages/query.py",
    "pages/review.py",
    "pages/compare.py",
    "pages/export.py",
    "pages/overview.py",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import eci_core  # noqa: F401
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
    from streamlit.testing.v1 import AppTest

    # the script runs in its own thread: profile inside it
    current: dict = {"prof": None}
    real = ScriptRunner._run_script

    def profiled(self, rerun_data):
        prof = current["prof"]
        if prof is None:
            return real(self, rerun_data)
        prof.enable()
        try:
            return real(self, rerun_data)
        finally:
            prof.disable()

    ScriptRunner._run_script = profiled

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=3600)
    t0 = time.monotonic()
    at.run()
    print(f"first run (load, score, Overview): {time.monotonic() - t0:.1f} s", flush=True)
    for rnd in range(args.rounds):
        for page in PAGES:
            at.switch_page(page)
            prof = current["prof"] = cProfile.Profile()
            t0 = time.monotonic()
            at.run()
            current["prof"] = None
            wall = time.monotonic() - t0
            err = [e.message for e in at.exception]
            print(
                f"\n=== visit {rnd + 1}: {page}: {wall:.2f} s"
                + (f"  EXCEPTION {err[0][:200]}" if err else "")
            )
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(
                r"(eci_core|/ui/|/pages/|streamlit/elements/(plotly|arrow|widgets/selectbox)|pandas/core/(frame|series|groupby/groupby)\.py|plotly/basedatatypes)",
                args.top,
            )
            lines = [ln for ln in out.getvalue().splitlines() if ln.strip() and ("/" in ln or "ncalls" in ln)]
            print("\n".join(lines[: args.top + 1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
