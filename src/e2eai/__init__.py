"""e2eai: an end-to-end ML platform on Kubeflow, runnable on one machine with the same code."""

__version__ = "0.1.0"
