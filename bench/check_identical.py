"""Shows that a refactor changed no number: ``eci score --json`` on the sample and on every format
fixture, compared byte for byte with a saved baseline.

    python bench/check_identical.py save DIR      # before the change: write DIR/<case>.json
    python bench/check_identical.py check DIR     # after it: exit 1 and name every case that differs

Cases: the bundled sample under the bundled MiniLM (its shipped embeddings) and under the hashing
encoder, and each file or folder of tests/fixtures/formats and tests/fixtures/app_small under the
hashing encoder (no model, so the run takes seconds). The embedding cache is off, so every number
is recomputed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cases() -> dict[str, list[str]]:
    """Paths relative to the repository (the run changes into it), so two checkouts compare."""
    out = {
        "sample-minilm": ["sample_data/pyfaq"],
        "sample-hashing": ["sample_data/pyfaq", "--encoder", "hashing", "--no-cache"],
    }
    fx = Path("tests") / "fixtures"
    for p in sorted((ROOT / fx / "formats").iterdir()) + [ROOT / fx / "app_small"]:
        rel = p.relative_to(ROOT)
        if p.is_dir() and not (p / "corpus.jsonl").is_file():  # files that are read one by one
            files = sorted(f for f in p.iterdir() if f.suffix == ".jsonl")
            for f in files:
                out[f"fixture-{p.name}-{f.name}"] = [
                    str(f.relative_to(ROOT)),
                    "--encoder",
                    "hashing",
                    "--no-cache",
                ]
        else:
            out[f"fixture-{p.name}"] = [str(rel), "--encoder", "hashing", "--no-cache"]
    return out


def run_case(args: list[str]) -> str:
    from eci_core.cli import main

    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        status = main(["score", *args, "--json", "--no-progress"])
    return json.dumps(
        {
            "status": status,
            "json": json.loads(buf.getvalue()) if status == 0 else None,
            "stderr": err.getvalue() if status else "",
        },
        indent=1,
        sort_keys=True,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("save", "check"))
    ap.add_argument("dir", type=Path)
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    a.dir = a.dir.resolve()
    a.dir.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    bad = []
    for name, args in cases().items():
        got = run_case(args)
        f = a.dir / f"{name}.json"
        if a.mode == "save":
            f.write_text(got, encoding="utf-8")
        elif not f.is_file() or f.read_text(encoding="utf-8") != got:
            bad.append(name)
        print(f"{name}: {'saved' if a.mode == 'save' else ('DIFFERS' if name in bad else 'identical')}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
