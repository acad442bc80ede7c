"""The Tailor container: settings, metadata database, storage and the services built on them.

``Tailor.open(settings)`` is the one place the pieces are wired; the server's lifespan and the in-process
``tailor.Client`` both use it. Each domain adds its service as an attribute here; importing the services
declares their tables, which ``Database.create_all`` then creates.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor.backends import for_settings
from tailor.db import Database
from tailor.hosting import HostingService
from tailor.jobs.service import TrainingJobService
from tailor.settings import Settings
from tailor.storage import Storage


@dataclass
class Tailor:
    settings: Settings
    db: Database
    storage: Storage
    jobs: TrainingJobService
    hosting: HostingService

    @classmethod
    def open(cls, settings: Settings) -> Tailor:
        settings.ensure_dirs()
        backend = for_settings(settings)  # local processes, or a Ray cluster (joined first: fails fast)
        db = Database(settings).create_all()
        storage = Storage(settings)
        jobs = TrainingJobService(settings, db, storage, backend).start()
        hosting = HostingService(settings, db, storage, backend)
        return cls(settings=settings, db=db, storage=storage, jobs=jobs, hosting=hosting)

    def close(self) -> None:
        """Stop running jobs (they end Stopped), then release the database."""
        self.jobs.close()
        self.hosting.close()  # stops the endpoint workers this process launched
        self.db.dispose()

    def __enter__(self) -> Tailor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
