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
from tailor.tuning import TuningService


@dataclass
class Tailor:
    settings: Settings
    db: Database
    storage: Storage
    jobs: TrainingJobService
    hosting: HostingService
    tuning: TuningService

    @classmethod
    def open(cls, settings: Settings, *, serve: bool = False) -> Tailor:
        """``serve``: a server's container, which resumes the tuning jobs a previous process left running."""
        settings.ensure_dirs()
        db = Database(settings).create_all()
        storage = Storage(settings)
        jobs = TrainingJobService(settings, db, storage).start()
        hosting = HostingService(settings, db, storage)
        tuning = TuningService(settings, db, jobs).start(serve=serve)
        return cls(settings=settings, db=db, storage=storage, jobs=jobs, hosting=hosting, tuning=tuning)

    def close(self) -> None:
        """Stop orchestrating tuning jobs, stop running jobs (they end Stopped), then release the database."""
        self.tuning.close()
        self.jobs.close()
        self.hosting.close()  # stops the endpoint workers this process launched
        self.db.dispose()

    def __enter__(self) -> Tailor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
