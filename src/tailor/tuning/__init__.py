"""Automatic model tuning: SageMaker's hyperparameter tuning jobs, searched with Optuna, each trial a training
job (``spec`` the request, ``store`` the rows, ``study`` the search, ``runner`` the orchestration, ``service``
the operations every surface calls)."""

from tailor.tuning.service import TuningService

__all__ = ["TuningService"]
