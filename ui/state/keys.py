"""The session-state keys of the dashboard (no logic here).

``K_*`` keys hold what the session loaded, marked and computed; ``W_*`` keys are the sidebar's
widget keys (their values are the settings, :func:`ui.state.settings.settings`). Their defaults
are set in one place, :func:`ui.state.settings.init_state`. The keys are prefixed so that they
never clash with the widget keys of a page.
"""

from __future__ import annotations

K_COLLECTION = "eci_collection"
K_FINGERPRINT = "eci_fingerprint"
K_CONTENT_HASH = "eci_content_hash"  # SHA-256 of the data: the score store's key (see scores.score_key)
K_REPORT = "eci_load_report"
K_ERRORS = "eci_load_errors"
K_DATA_LABEL = "eci_data_label"
K_DATA_DIRS = "eci_data_dirs"  # BEIR folders the user opened: runs added later resolve against their corpus
K_MARKS = "eci_marks"
K_MARKS_RESTORED = "eci_marks_restored"  # how many saved marks the last data change restored
K_FN_MODELS = "eci_fn_models"  # the review queue's refitted false-negative models (None: shipped)
K_FN_REFIT = "eci_fn_refit"  # what the last refit measured (false_negatives.refit_report), or None
K_QUERY = "eci_query_id"
K_PROJECTION = "pj_params"  # Projection page: method (pca/umap) and UMAP parameters
K_INITIALISED = "eci_initialised"
K_VALIDATIONS = "eci_validations"  # label -> ValidationResult opened or run in this session

# Widget keys of the sidebar (their values are the settings).
W_ENCODER = "set_encoder"
W_ENCODER_PATH = "set_encoder_path"
W_EMBEDDINGS = "set_embeddings"  # folder of your own vectors (eci_core.models.user_embeddings)
W_EMBEDDINGS_MODEL = "set_embeddings_model"
W_CROSS = "set_cross_encoder"
W_POSITIVE = "set_positive"
W_AGGREGATE = "set_aggregate"
W_TEMPERATURE = "set_temperature"
W_NEAR_DUP = "set_near_duplicate"
W_CE_MARGIN = "set_ce_margin"
W_PERCPOS = "set_percpos"
