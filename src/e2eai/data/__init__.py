"""The data stage: ingestion, snapshots, validation, cleaning and the quality report."""
