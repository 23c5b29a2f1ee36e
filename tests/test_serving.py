"""Safe serving whatever the working directory (``ui/serving.py``, called by ``app.py``).

``.streamlit/config.toml`` applies only when the server starts in the repository folder; the app
itself hides error details left at Streamlit's default and warns on every page when the server
listens beyond this machine, unless that is on purpose (``ECI_ALLOW_REMOTE=1``, ``-- --allow-remote``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the ui package (next to app.py), also under a bare `pytest`

from ui.serving import details_shown, is_loopback, remote_allowed, serving_check  # noqa: E402


def test_loopback_addresses():
    for a in ("127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]", " 127.0.0.1 "):
        assert is_loopback(a), a
    for a in (None, "", "  ", "0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.org", "my-host"):
        assert not is_loopback(a), a


def test_remote_allowed_only_on_purpose():
    assert not remote_allowed([], {})
    assert not remote_allowed(["--data", "x"], {"ECI_ALLOW_REMOTE": "0"})
    assert remote_allowed(["--data", "x", "--allow-remote"], {})
    for v in ("1", "true", "YES"):
        assert remote_allowed([], {"ECI_ALLOW_REMOTE": v})


def test_serving_check_decides_hiding_and_warning():
    # the repo's config.toml: loopback, details "none" set on purpose: nothing to do
    ok = serving_check("127.0.0.1", 8501, "none", True, False)
    assert not ok.hide_details and ok.warnings == ()
    # started elsewhere: Streamlit's defaults (every interface, "full" details): hide, and warn
    bare = serving_check(None, 8501, "full", False, False)
    assert bare.hide_details and len(bare.warnings) == 1
    w = bare.warnings[0]
    assert "every network interface (port 8501)" in w and "--server.address 127.0.0.1" in w
    assert "ECI_ALLOW_REMOTE=1" in w and "--allow-remote" in w and "tracebacks" not in w  # hidden now
    # an explicit wide address with details shown on purpose: both named in the warning
    wide = serving_check("0.0.0.0", 80, "stacktrace", True, False)
    assert not wide.hide_details and "address 0.0.0.0 (port 80)" in wide.warnings[0]
    assert "error details (tracebacks) are shown" in wide.warnings[0]
    # serving wider on purpose: no warning; default details are still hidden
    assert serving_check("", 8501, "full", False, True) == serving_check("0.0.0.0", 8501, "full", False, True)
    assert serving_check("", 8501, "full", False, True).warnings == ()
    assert serving_check("", 8501, "full", False, True).hide_details
    # details set on purpose on loopback are kept, without a warning
    assert serving_check("localhost", 8501, "full", True, False) == serving_check("::1", 1, True, True, False)
    assert not serving_check("localhost", 8501, "full", True, False).hide_details
    assert [details_shown(v) for v in ("full", "stacktrace", "type", "none", " None", True, False)] == [
        True,
        True,
        True,
        False,
        False,
        True,
        True,
    ]


@pytest.fixture()
def streamlit_options():
    """Sets Streamlit options for one test and puts the previous values (and where they were
    defined) back afterwards."""
    from streamlit import config

    saved = {}

    def set_(key, value, where="test"):
        if key not in saved:
            saved[key] = (config.get_option(key), config.get_where_defined(key))
        config.set_option(key, value, where)

    yield set_
    for key, (value, where) in saved.items():
        config.set_option(key, value, where)


def _run_app(monkeypatch, tmp_path):
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ECI_DATA", str(ROOT / "tests" / "fixtures" / "app_small"))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_app_warns_when_every_interface_is_bound_and_hides_default_details(
    monkeypatch, tmp_path, streamlit_options
):
    from streamlit import config
    from streamlit.config_option import ConfigOption

    monkeypatch.delenv("ECI_ALLOW_REMOTE", raising=False)
    streamlit_options("server.address", None, ConfigOption.DEFAULT_DEFINITION)  # as when started elsewhere
    streamlit_options("client.showErrorDetails", "full", ConfigOption.DEFAULT_DEFINITION)
    at = _run_app(monkeypatch, tmp_path)
    warned = [w.value for w in at.warning if "listens on every network interface" in w.value]
    assert len(warned) == 1 and "--server.address 127.0.0.1" in warned[0]
    assert config.get_option("client.showErrorDetails") == "none"
    # on purpose: no warning
    monkeypatch.setenv("ECI_ALLOW_REMOTE", "1")
    at = _run_app(monkeypatch, tmp_path)
    assert not [w for w in at.warning if "listens on" in w.value]


def test_app_does_not_warn_on_loopback(monkeypatch, tmp_path, streamlit_options):
    monkeypatch.delenv("ECI_ALLOW_REMOTE", raising=False)
    streamlit_options("server.address", "127.0.0.1")
    at = _run_app(monkeypatch, tmp_path)
    assert not [w for w in at.warning if "listens on" in w.value]
