"""A real PostgreSQL server for the audit-store tests: a throwaway cluster in a temp folder.

Not a test module of its own (it holds no tests). :class:`PostgresCluster` runs the
installed binaries (``initdb``, ``pg_ctl``; Debian's ``postgresql`` package puts them in
``/usr/lib/postgresql/VERSION/bin``) on 127.0.0.1 and a free port, with a password
(scram-sha-256), so URLs carry one as in production. As root (CI) the cluster runs as
the ``postgres`` user the package creates: PostgreSQL refuses to run as root.

Without the binaries the tests skip, naming the package to install; under CI (``CI`` set)
they fail instead, so a CI machine without PostgreSQL cannot pass by skipping.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server_harness import free_port

USER = "steward"
PASSWORD = "pg-Pa55-0123456789"  # the cluster's password, in every URL (never in output)
INSTALL = "apt-get install -y postgresql (Debian's PostgreSQL server package)"


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (the newest version installed), or ``None``."""
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def require_postgres() -> Path:
    """The binaries' folder; skips (fails under CI) when PostgreSQL or psycopg is missing."""
    missing = ""
    bindir = postgres_bin()
    if bindir is None:
        missing = f"no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL}"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing = "no psycopg (PostgreSQL driver): pip install 'psycopg[binary]'"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {missing}")
        pytest.skip(missing)
    assert bindir is not None
    return bindir


class PostgresCluster:
    """A PostgreSQL cluster in a temp folder on 127.0.0.1 (stopped and removed on exit)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="steward-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses root: run it as the package's user
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o700)

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as, *command], check=True, capture_output=True, text=True, timeout=120
        )

    def start(self) -> "PostgresCluster":
        """initdb (once), then start and wait until it takes connections."""
        if not self.data.exists():
            password_file = self.root / "password"
            password_file.write_text(PASSWORD)
            if self._as:
                account = pwd.getpwnam("postgres")
                os.chown(password_file, account.pw_uid, account.pw_gid)
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8",
            )  # fmt: skip
            password_file.unlink()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c max_connections=60"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.log), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the server at once (connections are cut)."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` (password included)."""
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """Create database ``name``; its URL."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={USER} password={PASSWORD} dbname=postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def remove(self) -> None:
        """Stop and delete the cluster's folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started cluster, removed afterwards (skips without PostgreSQL; see the module)."""
    cluster = PostgresCluster(require_postgres())
    try:
        yield cluster.start()
    finally:
        cluster.remove()
