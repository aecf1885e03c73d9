"""Face analysis backends behind one interface (see base.py for the conventions)."""
from .base import Face, FaceAnalysisError, FaceAnalyzer, cosine

__all__ = ["Face", "FaceAnalysisError", "FaceAnalyzer", "cosine"]
