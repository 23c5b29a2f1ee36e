"""``python -m eci_core.cli`` runs the ``eci`` command."""

from eci_core.cli import main

raise SystemExit(main())
