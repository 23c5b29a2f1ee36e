"""Data in and out: the typed data model, loaders of every accepted format, exports of cleaned
sets and tables, score tables to files, and reviewer marks.

* :mod:`.data`             ``Collection``, ``Source``, ``LoadReport``, ``LoadError``
* :mod:`.loaders`          format detection and parsing (``load_paths``, ``load_batch``, ``LoadLimits``)
* :mod:`.trust`            which neighbour files may be read; the data root checked on every file opened
* :mod:`.export`           cleaned sets (n-tuple, triplet, BGE, Tevatron) and tables
* :mod:`.marks`            reviewer marks and false-negative label files
* :mod:`.tables`           score tables to files (``eci score --out``: Parquet in row groups, CSV)

Nothing here imports :mod:`eci_core.models` (your own vectors, which the scoring reads instead of an
encoder's, are :mod:`eci_core.models.user_embeddings`).
"""
