"""Serving: the KServe predictor and transformer, local canary serving, cluster rollout."""
