"""Hosting: the control plane of models, endpoint configs and endpoints (see ``tailor.hosting.service``)."""

from tailor.hosting.service import HostingService

__all__ = ["HostingService"]
