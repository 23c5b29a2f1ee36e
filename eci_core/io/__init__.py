"""Data in and out: the typed data model, the accepted formats and their readers, exports of cleaned
sets and tables, score tables to files, and reviewer marks.

* :mod:`.records`          what readers produce: ``QueryRecord``, ``PassageRef``, ``LoadReport``,
                           ``LoadError``
* :mod:`.texts`            the Arrow text store (``TextColumn``, ``ArrowTextMap``)
* :mod:`.collection`       ``Collection``, ``Source`` (ids, texts, sources); CSR positives in
                           :mod:`.positives`
* :mod:`.load`             the loading entry points (``load_paths``, ``load_batch``, ``load_path``,
                           ``plan_extra_runs``)
* :mod:`.formats`          one module per format family (reader, detector, writer) and the registry
                           table ``FORMATS`` that detection, ``--format``, the README and the exporters read
* :mod:`.read`             the readers' shared plumbing: ``LoadLimits``, bounded gzip and text, rows
                           of every container, no-echo value checks, Arrow block reading
* :mod:`.trust`            which neighbour files may be read; the data root checked on every file opened
* :mod:`.cleaning`         cleaned sets (rules and reviewer marks) and the n-tuple plan
* :mod:`.export`           a cleaned set written in a format by the Export page's name (``export_bytes``)
* :mod:`.marks`            reviewer marks on disk and as labels (labels files: :mod:`.formats.fn_labels`)
* :mod:`.tables`           tables to CSV (formula cells escaped) / Parquet; ``eci score --out`` files

Nothing here imports :mod:`eci_core.models` or :mod:`eci_core.metrics` (your own vectors, which the
scoring reads instead of an encoder's, are :mod:`eci_core.models.user_embeddings`).
"""
