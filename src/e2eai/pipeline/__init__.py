"""Kubeflow Pipelines plumbing: the step functions components call, the content-hash step
cache, local runs (``kfp.local``), compilation to IR YAML and submission to a cluster.

Components (``components/``) and pipelines (``pipelines/``) sit on top of this package; it never
imports them. kfp itself is imported only inside the functions that need it.
"""
