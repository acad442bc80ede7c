"""One endpoint instance on a Ray node: the actor that fetches the model from S3 and runs the model worker.

The actor is the unit Ray places, restarts nothing of (Tailor's supervisor replaces a dead one) and names
(``tailor-instance-<instance id>`` in the ``tailor`` namespace, detached, so a restarted server finds it by
name). Its constructor does everything a worker needs, on the node it landed on: download ``ModelDataUrl``
through Storage built from the S3 settings it was given (a node never reads the server's home), then hand
the ``model.tar.gz`` to ``ThreadedWorker``, which unpacks it with the one load path every worker uses
(``load_model``: ``safe_extract``, safetensors/ONNX only) and serves frames over TCP on the node's IP with
the instance's token. Ray runs methods only after the constructor returned, so ``address()`` answering means
the model is loaded and the port is listening.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from tailor.serving.worker import ThreadedWorker
from tailor.settings import Settings
from tailor.storage import Storage

# The Settings fields a node needs to read ModelDataUrl: the S3 endpoint and its credentials, the archive cap.
S3_FIELDS = ("s3_endpoint_url", "s3_access_key_id", "s3_secret_access_key", "s3_region", "max_artifact_bytes")


def node_settings(settings: Settings) -> dict[str, Any]:
    """What the server passes to an instance actor of its settings (S3 only; never its home or database)."""
    return {k: getattr(settings, k) for k in S3_FIELDS}


class InstanceActor:
    def __init__(self, instance_id: str, spec: dict[str, Any]) -> None:
        self.instance_id = instance_id
        self.started = time.time()
        self._dir = Path(tempfile.mkdtemp(prefix=f"tailor-instance-{instance_id}-"))
        try:
            settings = Settings(home=self._dir / "home", **spec["s3"])
            tar = self._dir / "model.tar.gz"
            storage = Storage(settings)
            limit = settings.max_artifact_bytes
            if storage.size(spec["model_data_url"]) > limit:
                raise ValueError(f"{spec['model_data_url']}: the archive is larger than the {limit}-byte limit")
            storage.download_file(spec["model_data_url"], tar)
            self.worker = ThreadedWorker(tar, host=node_ip(), token=spec["token"], options=spec["options"])
            tar.unlink()  # load_model unpacked it into a directory of its own
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def address(self) -> str:
        """``tcp://TOKEN@IP:PORT`` once the model is loaded and the port listens."""
        return self.worker.address

    def info(self) -> dict[str, Any]:
        """Where this instance runs (placement checks, the operator): Ray node id, host, IP, pid, start, RSS."""
        import ray

        node = ray.get_runtime_context().get_node_id()
        return {
            "node_id": node,
            "hostname": socket.gethostname(),
            "ip": node_ip(),
            "pid": os.getpid(),
            "started": self.started,
            "rss_bytes": psutil.Process().memory_info().rss,  # the actor process: Ray's core worker + the model
        }

    def stop(self) -> bool:
        """Graceful stop: no new connections, in-flight requests finish; the caller then kills the actor."""
        self.worker.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
        return True


def node_ip() -> str:
    """The IP this node advertises to the cluster (``ray start --node-ip-address``): workers bind it only."""
    import ray

    return ray.util.get_node_ip_address()
