"""Several servers on one PostgreSQL database: endpoints change hands and cross-server requests reach owners.

Once per heartbeat a serving member (``tailor.membership``):

- claims every endpoint whose owner is not a live member (``SELECT … FOR UPDATE SKIP LOCKED``, owner set in the
  same transaction) and adopts it on a background thread holding the endpoint's lock: InService instances are
  relaunched here; an update asked of it (``pending_op``) is carried out; an update the dead server was in the
  middle of is rolled back (its new instances stopped, the old config relaunched, FailureReason says why); a
  Creating endpoint is deployed again; a Deleting one is finished;
- takes the updates and deletes other servers accepted for endpoints it owns (``pending_op``) and runs them.

The instances a dead server ran on this machine exit with it (each model worker watches its parent), so a
relaunch here never doubles them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from tailor.hosting.endpoints import Endpoints
from tailor.hosting.store import EndpointRow, WorkerRow
from tailor.membership import Membership

INTERRUPTED = "UpdateEndpoint was interrupted: the server running it stopped answering; the endpoint stays on {}"


@dataclass(eq=False)
class Takeover:
    endpoints: Endpoints
    membership: Membership

    def adopt_orphans(self) -> list[str]:
        """Claim the endpoints of dead servers and adopt each in the background; their names."""
        me = self.membership
        q = (
            select(EndpointRow)
            .where(
                EndpointRow.status.in_(("InService", "Updating", "Creating", "Deleting")),
                me.orphaned(EndpointRow.owner_server),
            )
            .with_for_update(skip_locked=True)
        )
        claimed: list[tuple[str, str, str | None]] = []
        with self.endpoints.db.session() as s:
            for row in s.scalars(q):
                claimed.append((row.name, row.status, row.pending_op))
                row.owner_server, row.pending_op = me.id, None
        for name, status, op in claimed:
            self.endpoints._background(f"adopt-{name}", lambda n=name, st=status, o=op: self._adopt(n, st, o))
        return [c[0] for c in claimed]

    def run_pending(self) -> list[str]:
        """Run the updates and deletes other servers accepted for endpoints this server owns."""
        me = self.membership
        q = (
            select(EndpointRow)
            .where(EndpointRow.owner_server == me.id, EndpointRow.pending_op.is_not(None))
            .with_for_update(skip_locked=True)
        )
        taken: list[tuple[str, str]] = []
        with self.endpoints.db.session() as s:
            for row in s.scalars(q):
                taken.append((row.name, row.pending_op or ""))
                row.pending_op = None
        for name, op in taken:
            work = self.endpoints.remove if op == "delete" else self.endpoints.switch
            self.endpoints._background(f"{op}-{name}", lambda n=name, w=work: w(n))
        return [t[0] for t in taken]

    def release(self) -> None:
        """A server leaving cleanly hands its endpoints to the others at once (their instances stop with it)."""
        with self.endpoints.db.session() as s:
            s.execute(
                update(EndpointRow).where(EndpointRow.owner_server == self.membership.id).values(owner_server=None)
            )

    # -- adopting one endpoint --------------------------------------------------------------------------
    def _adopt(self, name: str, status: str, op: str | None) -> None:
        eps = self.endpoints
        if status == "Deleting" or op == "delete":
            eps.remove(name)
            return
        if status == "Creating":
            with eps.locks(name):
                eps.instances.stop_generation(name, None)
            row = eps.get(name)
            eps._deploy_first(name, row.variants)
            return
        row = eps.get(name)
        if status == "Updating" and op != "update":
            with eps.locks(name):
                eps.instances.stop_generation(name, row.generation + 1)
            eps._set(
                name,
                status="InService",
                pending_config_name=None,
                failure_reason=INTERRUPTED.format(f"EndpointConfig {row.config_name!r}"),
            )
        self._relaunch(name, row.generation)
        if status == "Updating" and op == "update":
            eps.switch(name)

    def _relaunch(self, name: str, generation: int) -> None:
        eps = self.endpoints
        with eps.locks(name):
            workers = [w for w in eps.instances.of(name, generation) if w.state != "draining"]
            # This server's copy of each model and an address of its own backend (the dead server's may be
            # on another machine); the ids stay, so the rows keep their restart counts.
            with eps.db.session() as s:
                for w in workers:
                    row = s.get(WorkerRow, w.id)
                    if row is not None:
                        row.model_dir = w.model_dir = str(eps.models.directory(w.model_name))
                        row.socket_path = w.socket_path = eps.instances.backend.instance_address(w.id)
            eps.router.invalidate(name)
            eps.instances.relaunch(name, workers)
            eps.router.invalidate(name)
