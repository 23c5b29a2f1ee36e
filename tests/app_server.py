"""Start the real dashboard server and a headless Chromium for end-to-end tests and benchmarks.

Used by ``tests/test_browser.py`` and ``bench/bench_app.py``. Chromium is Debian's
``/usr/bin/chromium`` driven by Playwright through ``executable_path``; Playwright's own
browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"
SAMPLE = ROOT / "sample_data" / "pyfaq"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    """Debian's Chromium, or ``None`` when it is not installed."""
    for cand in ("/usr/bin/chromium", shutil.which("chromium") or "", "/usr/bin/chromium-browser"):
        if cand and Path(cand).exists():
            return cand
    return None


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here (no Debian chromium, no playwright), or None."""
    if chromium_path() is None:
        return (
            "Debian chromium is not installed (/usr/bin/chromium): `make test` installs it when run as root"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (the Python package) is not installed: pip install playwright"
    return None


def sample_or_fixture() -> Path:
    """The bundled sample when its negatives exist, else the small test fixture."""
    if (SAMPLE / "negatives").is_dir() and any((SAMPLE / "negatives").iterdir()):
        return SAMPLE
    return FIXTURE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``streamlit run app.py`` process."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path, started: float):
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.started = started

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the server's process group (the server and anything it started)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def free_port_in(ports: range) -> int:
    """The first port of ``ports`` nothing listens on (for suites that keep to a port range)."""
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def start_server(
    data: Path,
    encoder: str = "hashing",
    log_dir: Path | None = None,
    extra_env: dict | None = None,
    timeout: float = 60.0,
    log_name: str = "server.log",
    port: int | None = None,
) -> Server:
    """Start the dashboard on ``port`` (default: a free one) with ``ECI_DATA=data`` and wait until
    it answers.

    The server's output goes to ``log_dir/log_name`` (default ``tests/artifacts/server.log``,
    overwritten by the next start)."""
    port = port or free_port()
    log_dir = log_dir or (ROOT / "tests" / "artifacts")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / log_name
    env = dict(os.environ)
    env.update(
        {"ECI_DATA": str(data), "ECI_ENCODER": encoder, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    )
    env.update(extra_env or {})
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    started = time.monotonic()
    fh = open(log, "wb")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Server(proc, port, log, started)
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}:\n{server.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"streamlit did not answer on port {port} within {timeout:.0f} s:\n{server.log_text()[-3000:]}"
    )


@contextmanager
def running_server(data: Path, encoder: str = "hashing", **kw):
    server = start_server(data, encoder=encoder, **kw)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium(viewport=(1400, 4000)):
    """A headless Chromium page (Playwright sync API) with a tall viewport.

    The viewport is tall because Streamlit scrolls inside its own container: everything a
    page draws is then in view for screenshots and mouse gestures.
    """
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True
            )
            yield context.new_page()
        finally:
            browser.close()


#: One round trip per poll: script run over, no loading placeholder, enough charts, right title.
IDLE_JS = """([minCharts, title]) => {
  const app = document.querySelector('[data-testid=stApp]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid=stSkeleton]')) return false;
  if (document.querySelectorAll('.js-plotly-plot .main-svg').length < minCharts) return false;
  if (title !== null &&
      !Array.from(document.querySelectorAll('h1')).some(h => h.innerText.includes(title))) return false;
  return true;
}"""
SCRIPT_STATE_JS = (
    "() => { const a = document.querySelector('[data-testid=stApp]');"
    " return a ? a.getAttribute('data-test-script-state') : null }"
)


def wait_until_idle(
    page, timeout_ms: int = 60000, min_charts: int = 0, title: str | None = None, settle_s: float = 0.3
) -> float:
    """Wait until Streamlit has finished the script run (``data-test-script-state`` =
    ``notRunning``), no element is still a loading skeleton, ``title`` (when given) is the page's
    ``h1`` and at least ``min_charts`` plotly charts have drawn; the state must hold for
    ``settle_s``. Returns the monotonic time at which it first held (for timings)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        done = page.evaluate(IDLE_JS, [min_charts, title])
        if done:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > settle_s:
                return quiet_since
        else:
            quiet_since = None
        time.sleep(0.02)
    raise TimeoutError(
        f"the app did not finish within {timeout_ms / 1000:.0f} s (script state "
        f"{page.evaluate(SCRIPT_STATE_JS)!r}, charts drawn: {page.locator('.js-plotly-plot').count()}, "
        f"wanted {min_charts}, title {title!r})"
    )


#: Text of the main area without the drill-down's passage cards (user data may quote tracebacks).
MAIN_TEXT_JS = """() => {
  const main = document.querySelector('[data-testid=stMain]');
  if (!main) return '';
  const clone = main.cloneNode(true);
  clone.querySelectorAll('.eci-card').forEach(e => e.remove());
  return clone.innerText;
}"""


def error_texts(page) -> list[str]:
    """Texts of exception blocks, dialogs (e.g. "Page not found") and tracebacks shown on the
    page, outside the passages the app displays (empty when none)."""
    out = [el.inner_text()[:500] for el in page.locator('[data-testid="stException"]').all()]
    out += [el.inner_text()[:300] for el in page.locator('[data-testid="stDialog"]').all()]
    body = page.evaluate(MAIN_TEXT_JS)
    if "Traceback (most recent call last)" in body:
        out.append(body[body.index("Traceback") :][:500])
    return out
