"""HostingService: the one implementation of SageMaker's model, endpoint-config and endpoint APIs, plus invoke.

Every surface (SDK in-process, REST, SageMaker-compatible API, CLI) calls this. Shapes are botocore's
(DescribeModel, DescribeEndpointConfig, DescribeEndpoint, List*) as plain dicts with ``datetime`` values.

The service wires the hosting rooms together and adds nothing of its own but invocation:

    models.py            CreateModel & co: safe unpack of model.tar.gz under a server-made id
    endpoint_configs.py  the variants an endpoint serves
    endpoints.py         endpoint lifecycle: create, blue/green update, delete, describe, list, wait
    instances.py         each endpoint generation's model workers, started through a ``tailor.backends`` backend
    logs.py              each endpoint's bounded runtime log (lifecycle, workers' output, failed invocations)
    capture.py           DataCaptureConfig: sampled inputs/outputs as SageMaker's JSON Lines, off the request path
    routing.py           the routing table the router (``tailor.serving.router``) asks for
    supervisor.py        server mode: restart dead workers, sample and flush metrics
    metrics_store.py     per-minute endpoint metrics in the database

``serve()`` (the Tailor server) starts the supervisor; ``close()`` stops it and the workers this process owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from tailor.backends import Backend, local
from tailor.db import Database
from tailor.errors import NotFoundError
from tailor.hosting.capture import CaptureConfigs, DataCapture
from tailor.hosting.endpoint_configs import EndpointConfigs
from tailor.hosting.endpoints import ENDPOINT_STATUSES, Endpoints
from tailor.hosting.instances import EndpointLocks, Instances
from tailor.hosting.logs import MAX_CHUNK, EndpointLogs
from tailor.hosting.metrics_store import MetricsStore
from tailor.hosting.models import Models
from tailor.hosting.routing import RouteTable
from tailor.hosting.supervisor import Supervisor
from tailor.hosting.takeover import Takeover
from tailor.membership import Membership
from tailor.serving.metrics import EndpointMetrics
from tailor.serving.router import Invocation, Router
from tailor.settings import Settings
from tailor.storage import Storage


class HostingService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage,
        backend: Backend | None = None,
        membership: Membership | None = None,
    ) -> None:
        self.settings = settings
        self.membership = membership  # several servers on PostgreSQL (tailor.membership); None on SQLite
        self.db = db
        self.metrics = EndpointMetrics()
        self.models = Models(settings, db, storage)
        self.logs = EndpointLogs(settings)
        self.capture = DataCapture(CaptureConfigs(db), storage, self.logs)
        self.configs = EndpointConfigs(settings, db, self.models, self.capture.configs)
        self.metrics_store = MetricsStore(db, self.metrics)
        self.instances = Instances(settings, db, backend or local(), self.models, self.metrics_store, self.logs)
        locks = EndpointLocks()
        shared = membership is not None
        self.router = Router(RouteTable(db, self.instances, locks, shared).resolve, self.metrics)
        self.endpoints = Endpoints(
            settings, db, self.models, self.configs, self.instances, locks, self.router, self.capture, membership
        )
        owner = membership.id if membership else None
        self.supervisor = Supervisor(db, self.instances, locks, self.router, self.metrics_store, owner)
        self.takeover = Takeover(self.endpoints, membership) if membership else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        # The plain-method API below is what every surface calls.
        self.create_model, self.describe_model = self.models.create, self.models.describe
        self.list_models, self.delete_model = self.models.list, self.models.delete
        self.create_endpoint_config, self.describe_endpoint_config = self.configs.create, self.configs.describe
        self.list_endpoint_configs, self.delete_endpoint_config = self.configs.list, self.configs.delete
        self.create_endpoint, self.update_endpoint = self.endpoints.create, self.endpoints.update
        self.delete_endpoint, self.describe_endpoint = self.endpoints.delete, self.endpoints.describe
        self.list_endpoints, self.wait_endpoint = self.endpoints.list, self.endpoints.wait
        self.supervise_once, self.flush_metrics = self.supervisor.supervise_once, self.metrics_store.flush
        self.sample_workers, self.sample_batches = self.metrics_store.sample_workers, self.metrics_store.sample_batches
        self.worker_stats = self.metrics_store.worker_stats

    @property
    def worker_options(self) -> dict[str, Any]:
        """max_batch_size / max_delay_ms for new workers (bench, tests)."""
        return self.instances.options

    @property
    def max_member_bytes(self) -> int | None:
        """Per-file cap when unpacking artifacts (None: the artifact default)."""
        return self.models.max_member_bytes

    @max_member_bytes.setter
    def max_member_bytes(self, value: int | None) -> None:
        self.models.max_member_bytes = value

    def model_dir(self, name: str) -> Path:
        return self.models.directory(name)

    def endpoint_metrics(self, name: str, since: Any = None) -> dict[str, Any]:
        """Per variant and minute: Invocations, Invocation4XXErrors, Invocation5XXErrors, ModelLatency and
        OverheadLatency (mean µs), ModelLatencyP50/ModelLatencyP99 (µs, within 2.5 %), MaxModelLatency,
        BatchSize (mean realised batch, images), Batches and BatchedImages, MismatchedInputs (images whose size or
        colour mode differed from the model's and were resized or converted), InvocationsPerInstance,
        CPUUtilization (% of one core per worker) and MemoryUtilization (% of this machine's memory per worker).
        Percentiles and batch figures are None for a minute that has none."""
        self.endpoints.get(name)
        return self.metrics_store.query(name, since)

    def endpoint_logs(self, name: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """``{Text, NextOffset, Complete}`` of the endpoint's runtime log from logical byte ``offset``;
        Complete once the endpoint is gone (its log stays readable until the name is used again)."""
        try:
            self.endpoints.get(name)
            self.instances.collect_logs(name)  # what its workers printed since the supervisor's last pass
            gone = False
        except NotFoundError:
            if not self.logs.exists(name):
                raise
            gone = True
        out: dict[str, Any] = self.logs.read(name, offset, limit or MAX_CHUNK)
        out["Complete"] = gone
        return out

    def log_invocation_error(
        self, name: str, request_id: str, status: int, code: str, message: str, variant: str = ""
    ) -> None:
        """A failed invocation in the endpoint's runtime log (rate-limited there)."""
        self.logs.invocation_error(name, request_id, status, code, message[:300], variant)

    # -- invoke -----------------------------------------------------------------------------------------
    async def ainvoke(self, name: str, body: bytes, content_type: str, accept: str = "") -> Invocation:
        """Invoke on the caller's event loop (the REST route); an answered call is offered to data capture."""
        result = await self.router.invoke(name, content_type or "", accept or "", body)
        if result.reply.status < 300:
            reply = result.reply
            self.capture.offer(name, result.variant, content_type or "", body, reply.content_type, reply.body)
        return result

    def invoke(self, name: str, body: bytes, content_type: str, accept: str = "") -> Invocation:
        """Blocking invoke for the in-process SDK (runs on a private event-loop thread)."""
        fut: Future[Invocation] = asyncio.run_coroutine_threadsafe(
            self.ainvoke(name, body, content_type, accept), self._event_loop()
        )
        return fut.result()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(target=loop.run_forever, name="tailor-hosting-loop", daemon=True)
                self._loop_thread.start()
                self._loop = loop
            return self._loop

    def adopt_orphans(self) -> list[str]:
        """Shared database: adopt dead servers' endpoints and run updates/deletes asked of this server's."""
        if self.takeover is None:
            return []
        return self.takeover.adopt_orphans() + self.takeover.run_pending()

    # -- server mode and shutdown -----------------------------------------------------------------------
    def serve(self) -> HostingService:
        """Server mode: relaunch InService endpoints' workers, then supervise them in a background thread."""
        self.supervisor.start()
        return self

    def close(self, *, stop_workers: bool = True) -> None:
        """Stop supervising; stop the workers this process owns (the next server relaunches InService ones)."""
        self.supervisor.stop()
        self.endpoints.join(60)
        self.capture.close()  # what was sampled is written before the process goes
        with contextlib.suppress(Exception):  # closing must not fail on a metrics write
            self.metrics_store.flush()
        if stop_workers:
            self.instances.stop_owned()
            if self.takeover is not None:
                with contextlib.suppress(Exception):  # the others adopt them at once, or after the lease
                    self.takeover.release()
        if self._loop is not None:
            loop, self._loop = self._loop, None
            # The in-process SDK's worker connections end on their own loop before it stops, so the process
            # exits without "Task was destroyed but it is pending!" / "Event loop is closed" on stderr.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.router.close(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(5)
                self._loop_thread = None
            if not loop.is_running():
                loop.close()


__all__ = ["ENDPOINT_STATUSES", "HostingService"]
