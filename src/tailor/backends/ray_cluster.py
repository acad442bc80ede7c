"""Joining an existing Ray cluster: the one place that imports Ray and calls ``ray.init``.

Ray is an optional extra (``pip install 'tailor[cluster]'``): a single-machine user installs none of it, and
choosing the ray backend without it fails at start-up with one line that names the extra. Tailor never starts a
cluster of its own (``ray start`` on each host does, see README "Run on a cluster"); it joins one as a driver in
the ``tailor`` namespace, so the actors it names (endpoint instances) are found again by a restarted server.
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import Any

from tailor.errors import ServiceUnavailableError, ValidationError

NAMESPACE = "tailor"
EXTRA_HINT = "pip install 'tailor[cluster]'"
_lock = threading.Lock()


def require_ray() -> ModuleType:
    """The ``ray`` module, or one line naming the extra that provides it."""
    try:
        import ray
    except ImportError:
        raise ValidationError(f"the ray backend needs Ray, which is not installed: {EXTRA_HINT}") from None
    return ray


def connect(address: str | None) -> ModuleType:
    """Join the cluster at ``address`` once per process (later calls return at once); one-line errors."""
    if not address:
        raise ValidationError(
            'the ray backend needs the cluster\'s address: set TAILOR_RAY_ADDRESS ("auto" on a cluster host, '
            '"HOST:6379" or "ray://HOST:10001")'
        )
    ray = require_ray()
    with _lock:
        if ray.is_initialized():
            return ray
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                log_to_driver=False,  # workers' output reaches Tailor through its own pipes, not Ray's
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ServiceUnavailableError(f"cannot join the Ray cluster at {address}: {first}") from None
    return ray


def cluster_resources() -> dict[str, Any]:
    """What the joined cluster has in total (``{"CPU": 4.0, "GPU": 1.0, "memory": …, "host-a": 1.0}``)."""
    return dict(require_ray().cluster_resources())
