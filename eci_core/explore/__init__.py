"""What the dashboard shows, computed without Streamlit: tables and figures (:mod:`.views`),
plotly selections to ids (:mod:`.selection`), PCA/UMAP projections (:mod:`.projection`)."""
