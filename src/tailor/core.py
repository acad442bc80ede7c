"""The Tailor container: settings, metadata database, storage and the services built on them.

``Tailor.open(settings)`` is the one place the pieces are wired; the server's lifespan and the in-process
``tailor.Client`` both use it. Each domain adds its service as an attribute here; importing the services
declares their tables, which ``Database.create_all`` then creates.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor.db import Database
from tailor.hosting import HostingService
from tailor.jobs.service import TrainingJobService
from tailor.settings import Settings
from tailor.storage import Storage
from tailor.transform import TransformJobService


@dataclass
class Tailor:
    settings: Settings
    db: Database
    storage: Storage
    jobs: TrainingJobService
    hosting: HostingService
    transform: TransformJobService

    @classmethod
    def open(cls, settings: Settings) -> Tailor:
        settings.ensure_dirs()
        db = Database(settings).create_all()
        storage = Storage(settings)
        jobs = TrainingJobService(settings, db, storage).start()
        hosting = HostingService(settings, db, storage)
        transform = TransformJobService(settings, db, storage, hosting.models.resolve).start()
        return cls(settings=settings, db=db, storage=storage, jobs=jobs, hosting=hosting, transform=transform)

    def close(self) -> None:
        """Stop running jobs (they end Stopped), then release the database."""
        self.jobs.close()
        self.transform.close()  # before hosting: its model workers are this process's children too
        self.hosting.close()  # stops the endpoint workers this process launched
        self.db.dispose()

    def __enter__(self) -> Tailor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
