#!/usr/bin/env python3
"""Scale benchmark: load, encode, score and the dashboard on MS MARCO-like synthetic data.

The data come from ``bench/synthetic.py`` (a seeded BEIR directory: ``--queries`` queries, each
with one positive, ``--passages`` passages, ``--sources`` sources of ``--k`` negatives each as
TREC runs). Generated once into ``--data`` (reused when it is already there).

What is measured:

* **library** (a child process, so its peak RSS is its own): ``load_paths`` (loading), then
  ``score_collection`` with the ``hashing`` encoder and an empty embedding cache (none with
  ``--no-cache``), optionally writing the tables as ``eci score --out`` does (``--out``), with the time of
  each progress stage (embedding the texts, scoring the sources, bootstrap) and the process's
  peak RSS after loading and after scoring.
* **MiniLM** (``--minilm N``, a child process): the bundled all-MiniLM-L6-v2 on N synthetic
  passages and N queries, reported as seconds per 10k texts.
* **dashboard** (``streamlit run app.py`` with ``ECI_DATA`` = the data and ``ECI_ENCODER=hashing``,
  headless Debian Chromium via Playwright; the approach of ``bench/bench_app.py``): server start
  to the Overview's first chart (cold: load, score and draw), the last moment the "Computing"
  progress bar was on screen, hence "first chart after the scores exist"; a second browser
  session on the running server (scores in the store) to its first chart; every page switch
  (each page visited ``--rounds`` times); the server's RSS after the first chart and at the end
  and its peak (``VmHWM``).

Usage::

    nice -n 10 python bench/bench_scale.py --data /tmp/syn100k            # 100k queries x 3 x 10
    nice -n 10 python bench/bench_scale.py --data /tmp/syn1m --queries 1000000 --passages 3000000 --skip-app

``--json PATH`` saves every number; ``--write`` replaces BENCHMARKS.md's "## Scale" section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

PAGES = [  # (top-navigation link, page title, charts the page draws at least)
    ("Margins", "Margins", 2),
    ("Signal vs Safety", "Signal vs Safety", 1),
    ("Projection", "Projection", 1),
    ("Query drill-down", "Query drill-down", 0),
    ("Review queue", "Review queue", 0),
    ("Compare", "Compare", 1),
    ("Export", "Export", 0),
    ("Overview", "Overview", 2),
]


def _rss_mib(pid: int | str = "self") -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc/PID/status."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))


def _tree_rss_mib(pid: int) -> float:
    """RSS of ``pid`` and its children (Streamlit runs in one process; this is a safety net)."""
    total = _rss_mib(pid)[0]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    for k in kids:
        try:
            total += _tree_rss_mib(int(k))
        except (OSError, ValueError):
            pass
    return total


# --------------------------------------------------------------------------- child: library
def child_library(data: str, out: str, save: str | None, no_cache: bool = False) -> None:
    import eci_core  # noqa: F401
    from eci_core.config import ECIConfig
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.registry import load_encoder
    from eci_core.io.load import load_paths
    from eci_core.scoring import score_collection

    r: dict = {}
    t0 = time.monotonic()
    coll, report = load_paths([data])
    r["load_s"] = time.monotonic() - t0
    r["rss_after_load_mib"], r["peak_after_load_mib"] = _rss_mib()
    r["queries"], r["passages"] = coll.n_queries, coll.n_passages
    r["pairs"] = int(sum(len(s) for s in coll.sources.values()))
    r["sources"] = len(coll.sources)
    stages: dict[str, list[float]] = {}
    stage_peak: dict[str, float] = {}  # VmHWM when the stage was last seen: the peak up to then

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        st = stages.setdefault(stage, [now, now])
        st[1] = now
        stage_peak[stage] = _rss_mib()[1]
        if st[0] == now:  # a new stage: say so (long runs are followed from the log)
            print(
                f"[{time.strftime('%H:%M:%S')}] {stage}: RSS {_rss_mib()[0]:,.0f} MiB, peak so far "
                f"{stage_peak[stage]:,.0f} MiB",
                file=sys.stderr,
                flush=True,
            )

    print(
        f"[{time.strftime('%H:%M:%S')}] loaded in {r['load_s']:.0f} s: RSS {r['rss_after_load_mib']:,.0f} "
        f"MiB, peak {r['peak_after_load_mib']:,.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="eci-scale-cache-") as cache_dir:
        enc = load_encoder("hashing")
        t0 = time.monotonic()
        cache = None if no_cache else EmbeddingCache(cache_dir)
        res = score_collection(coll, enc, ECIConfig(), cache=cache, progress=progress)
        r["score_s"] = time.monotonic() - t0
        r["embedding_cache"] = not no_cache
    r["stages_s"] = {k: v[1] - v[0] for k, v in stages.items()}
    r["stage_peak_mib"] = stage_peak
    r["rss_after_score_mib"], r["peak_rss_mib"] = _rss_mib()
    r["best"] = str(res.sources.iloc[0]["name"])
    r["pairs_table_mib"] = float(res.pairs.memory_usage(deep=False, index=False).sum() / 2**20)
    r["pairs_dtypes"] = {c: str(t) for c, t in res.pairs.dtypes.items()}
    if save:  # what `eci score --out DIR` writes, with the same function
        from eci_core.io.tables import write_tables

        t0 = time.monotonic()
        names = write_tables(res, save)
        r["write_s"] = time.monotonic() - t0
        r["out_mib"] = {n: (Path(save) / n).stat().st_size / 2**20 for n in names}
        r["rss_after_write_mib"], r["peak_rss_after_write_mib"] = _rss_mib()
    Path(out).write_text(json.dumps(r))


def child_minilm(n: int, out: str) -> None:
    import eci_core  # noqa: F401
    from eci_core.models.registry import load_encoder
    from synthetic import vocab_words

    import numpy as np

    rng = np.random.default_rng(1)
    vocab = vocab_words(rng)
    passages = [
        " ".join(vocab[rng.integers(0, len(vocab), size=int(rng.integers(40, 81)))]) for _ in range(n)
    ]
    queries = [" ".join(vocab[rng.integers(0, len(vocab), size=int(rng.integers(5, 13)))]) for _ in range(n)]
    t0 = time.monotonic()
    enc = load_encoder(None)
    enc.encode_queries(queries[:8])
    r = {"minilm_load_s": time.monotonic() - t0, "minilm_n": n}
    t0 = time.monotonic()
    enc.encode_passages(passages)
    r["minilm_passages_per_10k_s"] = (time.monotonic() - t0) * 10_000 / n
    t0 = time.monotonic()
    enc.encode_queries(queries)
    r["minilm_queries_per_10k_s"] = (time.monotonic() - t0) * 10_000 / n
    Path(out).write_text(json.dumps(r))


def _run_child(args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        subprocess.run([sys.executable, __file__, "--child", *args, "--child-out", out], check=True, cwd=ROOT)
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


# --------------------------------------------------------------------------- dashboard
def _first_chart(
    page, t_start: float, timeout_s: float, min_charts: int = 1, title: str = "Overview"
) -> dict:
    """Poll until the page has ``title`` and ``min_charts`` charts; note the last moment the
    progress bar said "Computing" (scoring) and "Preparing the pages" (``warm.warm_up`` and the
    default projection, run after scoring and before the first chart)."""
    import app_server as A

    last_busy = last_preparing = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            busy, preparing = page.evaluate(
                "() => [document.body.innerText.includes('Computing'), "
                "document.body.innerText.includes('Preparing the pages')]"
            )
            done = page.evaluate(A.IDLE_JS, [min_charts, title])
        except Exception:  # page navigating
            busy, preparing, done = False, False, False
        now = time.monotonic()
        if busy:
            last_busy = now
        if preparing:
            last_preparing = now
        if done:
            return {
                "first_chart_s": now - t_start,
                "scores_ready_s": (last_busy - t_start) if last_busy else None,
                "pages_ready_s": (last_preparing - t_start) if last_preparing else None,
            }
        time.sleep(0.05)
    raise TimeoutError(f"no chart within {timeout_s:.0f} s")


def dashboard(data: Path, rounds: int, shots: Path | None, ports: tuple[int, int] | None = None) -> dict:
    import app_server as A

    port = A.free_port_in(range(ports[0], ports[1] + 1)) if ports else None
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="eci-scale-app-") as cache_dir:
        t_launch = time.monotonic()
        server = A.start_server(
            data,
            encoder="hashing",
            extra_env={"ECI_CACHE_DIR": cache_dir},
            timeout=120,
            log_dir=Path(cache_dir),
            port=port,
        )
        pid = server.proc.pid
        try:
            out["server_up_s"] = time.monotonic() - t_launch
            with A.chromium(viewport=(1400, 2400)) as page:
                page.goto(server.url + "/")
                first = _first_chart(page, t_launch, 1800)
                out["cold_first_chart_s"] = first["first_chart_s"]
                out["scores_ready_s"] = first["scores_ready_s"]
                out["pages_ready_s"] = first["pages_ready_s"]
                A.wait_until_idle(page, timeout_ms=600_000, min_charts=2, title="Overview")
                out["overview_idle_s"] = time.monotonic() - t_launch
                out["server_rss_after_first_chart_mib"] = _tree_rss_mib(pid)
                if shots:
                    page.screenshot(path=str(shots / "overview.png"), full_page=True)
                switches: dict[str, list[float]] = {}
                rss: dict[str, float] = {}
                for rnd in range(rounds):
                    for link, title, charts in PAGES:
                        t0 = time.monotonic()
                        page.locator('[data-testid="stTopNavLink"]', has_text=link).click()
                        t1 = A.wait_until_idle(page, timeout_ms=300_000, min_charts=charts, title=title)
                        switches.setdefault(title, []).append(t1 - t0)
                        rss[title] = _tree_rss_mib(pid)
                        errs = A.error_texts(page)
                        if errs:
                            raise RuntimeError(f"{title}: the page shows an error: {errs}")
                        if shots and rnd == 0:
                            page.screenshot(
                                path=str(shots / f"{title.lower().replace(' ', '_')}.png"), full_page=True
                            )
                out["switches"] = switches
                out["server_rss_per_page_mib"] = rss
            with A.chromium(viewport=(1400, 2400)) as page:
                t0 = time.monotonic()
                page.goto(server.url + "/")
                out["new_session_first_chart_s"] = _first_chart(page, t0, 600)["first_chart_s"]
            out["server_rss_end_mib"], out["server_peak_rss_mib"] = _rss_mib(pid)
        finally:
            server.stop()
    return out


# --------------------------------------------------------------------------- report
def _app_rows(app: dict, lib: dict) -> dict[str, str]:
    sw = app["switches"]
    allv = [x for v in sw.values() for x in v]
    first = [v[0] for v in sw.values()]
    later = [x for v in sw.values() for x in v[1:]]
    out = {
        "server start → Overview's first chart (cold: load, score, prepare the pages, draw)": (
            f"{app['cold_first_chart_s']:.1f} s"
        ),
    }
    if app.get("scores_ready_s"):
        out["scores ready (“Computing” gone) → first chart"] = (
            f"{app['cold_first_chart_s'] - app['scores_ready_s']:.1f} s"
        )
        if app.get("pages_ready_s"):
            out["… of which preparing the pages (warm-up, default projection)"] = (
                f"{app['pages_ready_s'] - app['scores_ready_s']:.1f} s"
            )
    out["new browser session on the running server → first chart"] = (
        f"{app['new_session_first_chart_s']:.1f} s"
    )
    out["page switch, first visit of each page (median, max)"] = (
        f"{statistics.median(first):.1f} s (max {max(first):.1f} s)"
    )
    if later:
        out["page switch, later visits (median, max)"] = (
            f"{statistics.median(later):.1f} s (max {max(later):.1f} s)"
        )
    out["page switch, all visits (median, max)"] = f"{statistics.median(allv):.1f} s (max {max(allv):.1f} s)"
    out["server RSS after the first chart / at the end / peak"] = (
        f"{app['server_rss_after_first_chart_mib']:,.0f} / {app['server_rss_end_mib']:,.0f} / "
        f"{app['server_peak_rss_mib']:,.0f} MiB"
    )
    return out


TARGETS = {
    "scores ready (“Computing” gone) → first chart": "< 30 s",
    "new browser session on the running server → first chart": "< 30 s",
    "page switch, first visit of each page (median, max)": "< 3 s",
    "page switch, later visits (median, max)": "< 3 s",
    "page switch, all visits (median, max)": "< 3 s",
}


def markdown(r: dict, cmd: str, before: dict | None = None, before_label: str = "before") -> str:
    lib = r.get("library") or (before or {}).get("library", {})
    lines = [
        "## Scale",
        "",
        f"Measured by `bench/bench_scale.py` on {r['date']} ({r['machine']}). Command:",
        "",
        "```",
        cmd,
        "```",
        "",
        f"Data: `bench/synthetic.py` BEIR directory, {lib.get('queries', 0):,} queries, "
        f"{lib.get('passages', 0):,} passages, {lib.get('sources', 0)} sources, {lib.get('pairs', 0):,} "
        f"(query, negative) pairs; encoder `hashing`, cross-encoder off. 1-minute load average "
        f"{r['load_before']:.1f} before and {r['load_after']:.1f} after the run (above the core count "
        "means other processes competed for the cores; then read wall times as upper bounds).",
        "",
        "| step | time | memory |",
        "|---|---|---|",
    ]
    if lib:
        lines.append(
            f"| load (`load_paths`) | {lib['load_s']:.1f} s | RSS {lib['rss_after_load_mib']:,.0f} MiB |"
        )
        for k, v in lib.get("stages_s", {}).items():
            lines.append(f"| score: {k} | {v:.1f} s | |")
        lines.append(
            f"| score (`score_collection`, hashing, all stages) | {lib['score_s']:.1f} s | "
            f"peak RSS **{lib['peak_rss_mib']:,.0f} MiB** |"
        )
        if "write_s" in lib:
            lines.append(
                f"| write the tables (`eci score --out`: {sum(lib['out_mib'].values()):,.0f} MiB, "
                f"pairs.parquet {lib['out_mib']['pairs.parquet']:,.0f} MiB) | {lib['write_s']:.1f} s | "
                f"peak RSS {lib['peak_rss_after_write_mib']:,.0f} MiB |"
            )
    if "minilm_passages_per_10k_s" in r:
        lines.append(
            f"| MiniLM, per 10k passages (measured on {r['minilm_n']:,}) | "
            f"{r['minilm_passages_per_10k_s']:.0f} s | |"
        )
        lines.append(
            f"| MiniLM, per 10k queries (measured on {r['minilm_n']:,}) | "
            f"{r['minilm_queries_per_10k_s']:.0f} s | |"
        )
    app = r.get("app")
    if app:
        now = _app_rows(app, lib)
        old = _app_rows(before["app"], lib) if before and before.get("app") else {}
        head = f"| what | {before_label} | now | target |" if old else "| what | value | target |"
        lines += [
            "",
            "Dashboard (`streamlit run app.py`, `ECI_ENCODER=hashing`, headless Chromium):",
            "",
            head,
            "|---|---|---|---|" if old else "|---|---|---|",
        ]
        for k, v in now.items():
            tgt = TARGETS.get(k, "")
            if k.startswith("server RSS"):
                tgt = f"peak < 2× the scoring peak ({2 * lib.get('peak_rss_mib', float('nan')):,.0f} MiB)"
            lines.append(
                f"| {k} | {old.get(k, '–')} | **{v}** | {tgt} |" if old else f"| {k} | **{v}** | {tgt} |"
            )
        sw = app["switches"]
        osw = (before or {}).get("app", {}).get("switches", {}) if old else {}
        n = max(len(v) for v in sw.values())
        cols = ([f"{before_label}, visit 1"] if osw else []) + [f"visit {i + 1}" for i in range(n)]
        lines += [
            "",
            "Page switches (seconds):",
            "",
            "| page | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        for title, v in sw.items():
            cells = ([f"{osw[title][0]:.1f}" if title in osw else "–"] if osw else []) + [
                f"{x:.1f}" for x in v
            ]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_section(md: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the "## Scale" section of BENCHMARKS.md (or append it), keeping the rest."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(r"^## Scale\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: md + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + md
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=None, help="synthetic BEIR directory (generated when missing)"
    )
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--passages", type=int, default=300_000)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument(
        "--minilm", type=int, default=0, metavar="N", help="time MiniLM on N passages and N queries"
    )
    ap.add_argument("--rounds", type=int, default=2, help="visits of every page")
    ap.add_argument("--skip-library", action="store_true")
    ap.add_argument("--skip-app", action="store_true")
    ap.add_argument("--screenshots", type=Path, default=None, help="save a PNG of every page here")
    ap.add_argument(
        "--ports", default=None, metavar="LO-HI", help="serve the dashboard on a free port in this range"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--no-cache",
        action="store_true",
        help="score without the embedding cache, as `eci score --no-cache` (default: an empty cache "
        "in a temporary folder, written as the texts are encoded)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the tables as `eci score --out DIR` does (timed, with their sizes)",
    )
    ap.add_argument(
        "--before",
        type=Path,
        default=None,
        metavar="JSON",
        help="a --json of an earlier run (e.g. the code before a change): shown side by side",
    )
    ap.add_argument("--before-label", default="before")
    ap.add_argument("--write", action="store_true", help="replace BENCHMARKS.md's '## Scale' section")
    ap.add_argument(
        "--render", default=None, metavar="JSON", help="print (and --write) the section of a saved --json run"
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render:  # re-render the markdown of saved runs: --render AFTER.json [--before BEFORE.json]
        r = json.loads(Path(args.render).read_text())
        before = json.loads(args.before.read_text()) if args.before else None
        md = markdown(r, r.get("command", ""), before, args.before_label)
        print(md)
        if args.write:
            write_section(md)
        return 0
    if args.child:
        kind, *rest = args.child
        if kind == "library":
            save = next((x for x in rest[1:] if x != "no-cache"), None)
            child_library(rest[0], args.child_out, save, no_cache="no-cache" in rest[1:])
        else:
            child_minilm(int(rest[0]), args.child_out)
        return 0
    if args.data is None:
        ap.error("--data DIR is required (the synthetic BEIR directory; generated when missing)")
    data = args.data.resolve()
    if not (data / "negatives").is_dir():
        from synthetic import make_beir

        t0 = time.monotonic()
        make_beir(data, args.queries, args.passages, args.sources, args.k)
        print(f"generated {data} in {time.monotonic() - t0:.0f} s", flush=True)
    r: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "load_before": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM, "
        f"Python {platform.python_version()}",
    }
    if not args.skip_library:
        r["library"] = _run_child(
            ["library", str(data)]
            + ([str(args.out)] if args.out else [])
            + (["no-cache"] if args.no_cache else [])
        )
        print(json.dumps(r["library"]), flush=True)
    if args.minilm:
        r.update(_run_child(["minilm", str(args.minilm)]))
    if not args.skip_app:
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
        ports = tuple(int(x) for x in args.ports.split("-")) if args.ports else None
        r["app"] = dashboard(data, args.rounds, args.screenshots, ports)
    r["load_after"] = os.getloadavg()[0]
    r["command"] = "nice -n 10 .venv/bin/python bench/bench_scale.py " + " ".join(argv or sys.argv[1:])
    if args.json:
        args.json.write_text(json.dumps(r, indent=1, default=str))
    cmd = "nice -n 10 .venv/bin/python bench/bench_scale.py " + " ".join(a for a in (argv or sys.argv[1:]))
    before = json.loads(args.before.read_text()) if args.before else None
    md = markdown(r, cmd, before, args.before_label)
    print(md)
    if args.write:
        write_section(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
