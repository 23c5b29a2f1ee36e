"""Does ECI predict training? Train per source on a fixed budget, evaluate on held-out queries,
and compare every pre-training number's ranking of the sources with training's.

* :mod:`.splits`     BEIR train/test or k-fold splits over queries; leakage-safe training lists
* :mod:`.trainers`   ``linear``, ``linear-both`` (cheap, frozen embeddings) and ``finetune``
* :mod:`.protocol`   the equal-budget protocol (:class:`ValidationConfig`, :func:`run_protocol`)
* :mod:`.evaluation` nDCG@10, R@10, MRR@10 with ir_measures over the full evaluation corpus
* :mod:`.analysis`   downstream, agreement, trainer-agreement and encoder-agreement tables
* :mod:`.results`    :func:`validate`, :class:`ValidationResult`, save / :func:`load_results`
"""

from eci_core.validation.protocol import BASELINES, IN_BATCH, UNTRAINED, ValidationConfig
from eci_core.validation.results import (
    PRETRAINING_SETTINGS,
    ValidationResult,
    find_results,
    load_results,
    pretraining_settings,
    source_signatures,
    validate,
)
from eci_core.validation.trainers import TRAINERS, make_trainer
from eci_core.validation.analysis import trainer_agreement

__all__ = [
    "BASELINES",
    "IN_BATCH",
    "PRETRAINING_SETTINGS",
    "UNTRAINED",
    "TRAINERS",
    "ValidationConfig",
    "ValidationResult",
    "find_results",
    "load_results",
    "make_trainer",
    "pretraining_settings",
    "source_signatures",
    "trainer_agreement",
    "validate",
]
