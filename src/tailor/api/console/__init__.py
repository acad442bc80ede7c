"""The web console at ``/console``: a static single-page app plus the few JSON routes it needs."""

from tailor.api.console.routes import router

__all__ = ["router"]
