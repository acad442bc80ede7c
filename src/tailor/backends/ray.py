"""The ray backend: training jobs and endpoint instances on an existing Ray cluster.

Composed of two halves with one concern each: ``RayTraining`` (a job's instances as one placement group forming
a torch.distributed group, see ``ray_training``) and ``RayInstances`` (each endpoint instance a Ray actor running
Tailor's model worker, see ``ray_instances``). Joining the cluster happens once, when the backend is made, so a
wrong address or a missing extra stops the server at start-up with one line.
"""

from __future__ import annotations

from tailor.backends import ray_cluster
from tailor.backends.instance_types import load_table
from tailor.backends.ray_instances import RayInstances
from tailor.backends.ray_training import RayTraining
from tailor.settings import Settings


class RayBackend(RayTraining, RayInstances):
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        ray_cluster.connect(settings.ray_address)
        self.settings = settings
        self.instance_types = load_table(settings.instance_types_path)
        self.driver_dirs = {}
