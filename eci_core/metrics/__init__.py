"""The numbers: one function per metric of the contract, each with its formula.

* :mod:`.eci`              per-query and per-source ECI and its components (vectorised over
                           ragged groups)
* :mod:`.lexical`          IDF and ``lex_overlap`` (tokens: :func:`eci_core.text.tokenize`)
* :mod:`.retrieval`        the one top-k (``top_k_rows``, ``top_k``) and the one retrieval evaluator
                           (``evaluate_run``, ``positive_rank_metrics``: ir_measures)
* :mod:`.bootstrap`        bootstrap intervals and P(A beats B) on shared queries
* :mod:`.false_negatives`  the false-negative score (``fn_score``, ``fn_band``; coefficients in
                           ``fn_model.json``)
* :mod:`.fused`            the numba gather-and-dot kernel (the numpy path's numbers up to float32
                           summation order)
"""
