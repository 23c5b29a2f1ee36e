"""What the dashboard shows, computed without Streamlit: one module per page's data, each with the
figures it draws, and the standalone HTML report built from them.

* :mod:`.memo`           the one memo: values derived from a table, computed once while it lives
* :mod:`.common`         source order and colours, row positions per source / query, sampling and binning
* :mod:`.overview`       the verdict, ECI ranking and validity, validated / predicted rankings, components
* :mod:`.margins`        margin histograms, percpos band, flag counts and funnel, false-negative bands
* :mod:`.signal_safety`  the Signal-vs-Safety points, iso-DE grid and figure
* :mod:`.drilldown`      query search, lowest-ECI queries, one query's negatives
* :mod:`.review`         the review queue with marks, detector quality and PR curves
* :mod:`.compare`        two sources per shared query and its scatter
* :mod:`.cleaning`       the Export page's cleaned set (kept for the recent option sets)
* :mod:`.projection`     PCA / UMAP point tables and the projection figure
* :mod:`.selection`      plotly selections to row ids
* :mod:`.warm`           every page's defaults, computed right after scoring
* :mod:`.report`         the standalone HTML report
"""
