"""Batch transform: SageMaker's transform jobs over the endpoint's own model workers (see ``runner``)."""

from tailor.transform.service import TERMINAL, TransformJobService

__all__ = ["TERMINAL", "TransformJobService"]
