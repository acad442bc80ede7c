"""A real PostgreSQL server for the tests: Debian's PostgreSQL 15 binaries, a throwaway cluster on loopback.

PostgreSQL refuses to run as root, so as root (CI) every binary runs as the ``postgres`` user through
``runuser`` and the data directory is handed to that user. The cluster trusts loopback connections (nothing
but this machine can reach 127.0.0.1) and uses the C locale, so its behaviour matches every machine's.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a PostgreSQL cluster in a temp dir; yields ``postgresql+psycopg://postgres@127.0.0.1:PORT``."""
    assert (PG_BIN / "initdb").exists(), f"PostgreSQL 15 is not installed ({PG_BIN}): run `make test` (it installs it)"
    root = Path(tempfile.mkdtemp(prefix="tailor-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root)
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--locale=C",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        **run,
    )
    port = _free_port()
    # fsync off: a test cluster never outlives a crash; sockets only in the temp dir and on loopback.
    opts = f"-h 127.0.0.1 -p {port} -k {root} -c max_connections=400"
    opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"]),
        **run,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            cwd=root,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(root, ignore_errors=True)


_created = 0


def fresh_database(base_url: str) -> str:
    """A new, empty schema of the cluster's ``postgres`` database, as the URL of a database whose search path
    is that schema: as isolated as a database for Tailor's tables, and created in milliseconds where
    CREATE DATABASE copies a template (~2 s on a busy 2-core machine)."""
    import psycopg

    global _created
    _created += 1
    name = f"t{os.getpid()}_{_created}"
    with psycopg.connect(
        base_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres", autocommit=True
    ) as c:
        c.execute(f'CREATE SCHEMA "{name}"')
    return f"{base_url}/postgres?options=-csearch_path%3D{name}"
