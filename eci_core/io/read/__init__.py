"""The shared plumbing of every format's reader, each piece public for the format modules.

* :mod:`.limits`   ``LoadLimits``, the limits and allowed roots of the load in progress, ``open_file``
* :mod:`.vocab`    which field names a message may show, the accepted formats' hints
* :mod:`.values`   no-echo value checks (``text_value``, ``id_value``, ``num_value``, ``as_list`` …)
* :mod:`.text`     bounded gzip (``GzipRaw``) and text (``Lines``, ``read_text``, JSON size checks)
* :mod:`.rows`     containers to records (JSONL, JSON, CSV/TSV; Parquet in :mod:`.parquet`)
* :mod:`.parquet`  Parquet rows within the limits (``check_parquet_metadata``, ``ParquetDecodedLimits``)
* :mod:`.blocks`   Arrow block reading for the vectorised readers, pool and malloc tuning

Imports only the data model (:mod:`eci_core.io.records`, :mod:`~eci_core.io.texts`,
:mod:`~eci_core.io.collection`) and :mod:`eci_core.io.trust` (and each other, downward:
limits, vocab, values, text, rows/parquet, blocks).
"""
