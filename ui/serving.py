"""Safe serving, checked by ``app.py`` at every run (README "Serving safely", "Local only").

``.streamlit/config.toml`` binds ``127.0.0.1`` and hides error details, but Streamlit reads it
only from the folder the server was started in: ``streamlit run path/to/app.py`` started
elsewhere binds every network interface and shows tracebacks in the browser. So the app checks
the options it actually runs with:

* ``client.showErrorDetails`` left at Streamlit's default (``"full"``) is set to ``"none"`` here
  (tracebacks still go to the console); a value set on purpose (flag, config file, environment)
  is kept.
* ``server.address`` not a loopback address (unset = every interface) puts a warning on every
  page naming what is exposed and how to fix it, unless serving wider is on purpose:
  ``ECI_ALLOW_REMOTE=1`` in the environment or ``-- --allow-remote`` on the command line.

:func:`serving_check` is the decision (a pure function, tested without a server);
:func:`apply` reads Streamlit's options and applies it; :func:`render` shows the warnings.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

#: Environment variable that says serving beyond this machine is on purpose.
ALLOW_REMOTE_ENV = "ECI_ALLOW_REMOTE"
#: Launch argument (after ``--``) that says the same.
ALLOW_REMOTE_ARG = "--allow-remote"


def is_loopback(address: str | None) -> bool:
    """True for an address only this machine can reach: ``localhost``, ``127.0.0.0/8``, ``::1``.
    Unset / empty (every interface), ``0.0.0.0``, ``::``, other addresses and host names are not."""
    if address is None:
        return False
    a = str(address).strip()
    if a.startswith("[") and a.endswith("]"):
        a = a[1:-1]
    if not a:
        return False
    if a.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(a).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def remote_allowed(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Serving beyond this machine is on purpose: ``ECI_ALLOW_REMOTE`` is ``1`` / ``true`` /
    ``yes``, or ``--allow-remote`` is among the launch arguments (``streamlit run app.py --
    --allow-remote``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    return (
        environ.get(ALLOW_REMOTE_ENV, "").strip().lower() in ("1", "true", "yes") or ALLOW_REMOTE_ARG in argv
    )


def details_shown(value) -> bool:
    """Whether a ``client.showErrorDetails`` value shows anything beyond a generic message
    (``"full"``, ``"stacktrace"``, ``"type"`` and the legacy ``True`` / ``False`` do)."""
    return str(value).strip().lower() != "none"


@dataclass(frozen=True)
class ServingCheck:
    """What :func:`apply` does: ``hide_details`` sets ``client.showErrorDetails`` to ``"none"``;
    ``warnings`` are shown on every page."""

    hide_details: bool
    warnings: tuple[str, ...]


def serving_check(
    address: str | None, port: int | None, error_details, details_set: bool, allow_remote: bool
) -> ServingCheck:
    """The decision, from the options the server runs with.

    ``address``: ``server.address`` (None / empty: every interface); ``error_details``:
    ``client.showErrorDetails``; ``details_set``: it was set on purpose (not Streamlit's
    default); ``allow_remote``: :func:`remote_allowed`."""
    hide = not details_set and details_shown(error_details)
    shown = details_shown(error_details) and not hide
    warnings: list[str] = []
    if not is_loopback(address) and not allow_remote:
        where = (
            "every network interface" if not (address or "").strip() else f"address {str(address).strip()}"
        )
        port_s = f" (port {port})" if port else ""
        what = "anyone who can reach this machine can use the dashboard and open the data it may read" + (
            ", and error details (tracebacks) are shown in the browser" if shown else ""
        )
        warnings.append(
            f"This server listens on {where}{port_s}: {what}. To keep it on this machine, restart it with "
            "`--server.address 127.0.0.1` (or start it from the repository folder, whose "
            f".streamlit/config.toml does that). If serving it wider is on purpose, set {ALLOW_REMOTE_ENV}=1 "
            f"or add `-- {ALLOW_REMOTE_ARG}`."
        )
    return ServingCheck(hide, tuple(warnings))


def apply() -> ServingCheck:
    """Read Streamlit's options, hide error details when they were left at the default, and
    return the check (call first thing in ``app.py``, on every run)."""
    import streamlit as st
    from streamlit import config
    from streamlit.config_option import ConfigOption

    details = st.get_option("client.showErrorDetails")
    details_set = config.get_where_defined("client.showErrorDetails") != ConfigOption.DEFAULT_DEFINITION
    check = serving_check(
        st.get_option("server.address"), st.get_option("server.port"), details, details_set, remote_allowed()
    )
    if check.hide_details:
        st.set_option("client.showErrorDetails", "none")
    return check


def render(check: ServingCheck) -> None:
    """Show the check's warnings at the top of the page."""
    import streamlit as st

    for text in check.warnings:
        st.warning(text, icon=":material/public:")
