"""Tailor: classify your own images on your own machines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tailor._version import __version__

if TYPE_CHECKING:
    from tailor.client import Client, TrainingJob

__all__ = ["Client", "TrainingJob", "__version__"]


def __getattr__(name: str) -> Any:
    # The SDK sits at the top of the import graph; importing it only when asked keeps ``import tailor.errors``
    # (and every training or model-worker process) from loading the server, the database and the HTTP stack.
    if name in ("Client", "TrainingJob"):
        from tailor import client

        return getattr(client, name)
    raise AttributeError(f"module 'tailor' has no attribute {name!r}")
