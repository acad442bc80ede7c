"""The Tailor container: settings, metadata database, storage and the services built on them.

``Tailor.open(settings)`` is the one place the pieces are wired; the server's lifespan and the in-process
``tailor.Client`` both use it. Each domain adds its service as an attribute here; importing the services
declares their tables, which ``Database.create_all`` then creates.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor import migrations
from tailor.backends import for_settings
from tailor.db import Database
from tailor.hosting import HostingService
from tailor.jobs.service import TrainingJobService
from tailor.membership import Membership, clustered
from tailor.settings import Settings
from tailor.storage import Storage
from tailor.transform import TransformJobService
from tailor.tuning import TuningService


@dataclass
class Tailor:
    settings: Settings
    db: Database
    storage: Storage
    jobs: TrainingJobService
    hosting: HostingService
    tuning: TuningService
    transform: TransformJobService
    membership: Membership | None = None  # a PostgreSQL database shared by several servers (tailor.membership)

    @classmethod
    def open(cls, settings: Settings, *, serve: bool = False) -> Tailor:
        """``serve``: a server's container, which resumes the tuning jobs a previous process left running."""
        settings.ensure_dirs()
        backend = for_settings(settings)  # local processes, or a Ray cluster (joined first: fails fast)
        db = Database(settings)
        migrations.prepare(db)  # a fresh database at head; an older one upgraded (SQLite) or refused
        # On a shared database every process is a member while it runs (its jobs are its own); only a
        # serving one (``serve``) also takes over what dead members leave.
        membership = Membership(settings, db).join().start() if clustered(db) else None
        storage = Storage(settings)
        jobs = TrainingJobService(settings, db, storage, backend, membership=membership).start()
        hosting = HostingService(settings, db, storage, backend, membership=membership)
        tuning = TuningService(settings, db, jobs).start(serve=serve)
        transform = TransformJobService(settings, db, storage, hosting.models.resolve).start()
        return cls(
            settings=settings,
            db=db,
            storage=storage,
            jobs=jobs,
            hosting=hosting,
            tuning=tuning,
            transform=transform,
            membership=membership,
        )

    def serve(self) -> Tailor:
        """Server mode: supervise endpoints (relaunch InService ones) and, on a shared database, take over the
        jobs and endpoints of servers whose heartbeat stopped."""
        self.hosting.serve()
        if self.membership is not None:
            self.membership.set_url(f"http://{self.settings.host}:{self.settings.port}")
            self.membership.add_tasks([self.jobs.adopt_orphans, self.hosting.adopt_orphans])
        return self

    def close(self) -> None:
        """Stop orchestrating tuning jobs, stop running jobs (they end Stopped), then release the database."""
        self.tuning.close()
        self.jobs.close()
        self.transform.close()  # before hosting: its model workers are this process's children too
        self.hosting.close()  # stops the endpoint workers this process launched
        if self.membership is not None:
            self.membership.leave()
        self.db.dispose()

    def __enter__(self) -> Tailor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
