"""ONNX export: torch and scikit-learn models → one ONNX graph under the serving contract.

Parity with the framework model is checked on the holdout; int8 dynamic quantisation is
kept only when it costs little AUC.
"""

from e2eai.export.model_export import ExportResult, export_model

__all__ = ["ExportResult", "export_model"]
