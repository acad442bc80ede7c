"""Where processes run: the one seam between Tailor's control plane and the machines that do the work.

Two kinds of work run outside the Tailor process, and both go through a ``Backend``:

* a training job's algorithm (``start_training``): one command, its own process group, stdout piped back so
  the runner can log it and parse metrics; stop and timeouts signal the whole group;
* an endpoint instance (``start_instance`` … ``stop_instance``): one model worker (``tailor.serving.worker``)
  that serves the wire protocol on an address the router connects to.

``local`` (``LocalBackend``) runs both as child processes of this machine, which is all Tailor does today. A
cluster backend (Ray: training instances as a placement group forming one torch.distributed group, endpoint
instances as actors running the same worker) implements the same protocol; the job runner and the hosting
services never start, signal or look up a process themselves. What a backend returns to remember an instance
(``Handle``) is persisted by hosting, so a restarted server can check and stop what an earlier one started.
"""

from __future__ import annotations

from tailor.backends.base import Backend, Handle, TrainingInputs, TrainingProcess
from tailor.backends.local import LocalBackend
from tailor.settings import Settings


def local() -> Backend:
    """The backend that runs everything as child processes of this machine."""
    return LocalBackend()


def for_settings(settings: Settings) -> Backend:
    """The backend ``settings.backend`` names; the ray one joins its cluster now (one-line errors)."""
    if settings.backend == "ray":
        from tailor.backends.ray import RayBackend  # imports Ray only when chosen: it is an optional extra

        return RayBackend(settings)
    return local()


__all__ = ["Backend", "Handle", "LocalBackend", "TrainingInputs", "TrainingProcess", "for_settings", "local"]
