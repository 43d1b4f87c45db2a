"""Feature engineering and the Feast feature store (offline training sets, online serving)."""
