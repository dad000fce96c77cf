"""QC review dashboard (Streamlit). The app itself is built in the dashboard issue; the catalog
tables it reads (shots, metrics, reviews) already exist in ``reel.db``."""
