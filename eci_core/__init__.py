"""ECI Explorer core library: load hard-negative sources, score them with ECI, mine, export.

Importing ``eci_core`` sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` (unless already
set) so that no model library ever tries to reach a model hub; every model used is local.
Heavy dependencies (torch, sentence-transformers, onnxruntime, umap) are imported lazily by the
modules that need them.
"""

import os as _os

_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eci_core.io.collection import Collection, Source
from eci_core.io.records import LoadError, LoadReport, PassageRef, QueryRecord, SourceReport, text_id

__version__ = "0.1.0"

__all__ = [
    "Collection",
    "LoadError",
    "LoadReport",
    "PassageRef",
    "QueryRecord",
    "Source",
    "SourceReport",
    "text_id",
    "__version__",
]
