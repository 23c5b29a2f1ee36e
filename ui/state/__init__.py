"""Session state of the dashboard, one module per concern (import from the module you need).

* :mod:`ui.state.keys`: the session-state and sidebar widget keys (no logic).
* :mod:`ui.state.launch`: launch arguments and trust: ``--data`` / ``$ECI_DATA``, the data root
  every opened file must resolve into, the read-only embedding caches, the scoring time budget.
* :mod:`ui.state.settings`: the sidebar's settings (:class:`~eci_core.config.ECIConfig`) and
  :func:`~ui.state.settings.init_state`, the one place the session state is initialised.
* :mod:`ui.state.loading`: the default dataset, local paths and uploads, the load report.
* :mod:`ui.state.models`: encoder, cross-encoder and embedding cache, once per process.
* :mod:`ui.state.scores`: the score store (one result per data and settings, shared by pages
  and sessions, through :func:`eci_core.explore.memo.memo`) and
  :func:`~ui.state.scores.current`, what every page reads.
* :mod:`ui.state.marks`: the reviewer's marks, saved per data fingerprint.
* :mod:`ui.state.derived`: what pages derive from the scores (the projection map, the warm-up).
* :mod:`ui.state.navigation`: page files, URL parameters, the legacy ``pages/`` routing fix.
* :mod:`ui.state.validation`: the saved validations and the one the Overview quotes.

Pages never compute metrics; they read :func:`ui.state.scores.current`. The modules import each
other in one direction only: keys and launch at the bottom, then marks, models and loading, then
settings, then scores, then derived and validation; nothing outside a module uses its private
(``_``) names.
"""
