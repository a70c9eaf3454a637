"""The PostgreSQL cluster of our own in .local/pg: Debian's binaries (apt-get installs them when
missing), initdb once, our settings on every start, pg_ctl to start and stop it.

deploy/local/postgres.py decides when to run it; `stop` is the only way `down` stops a server.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from deploy.local.procs import (
    HOST,
    LOCAL,
    ROOT,
    StackError,
    apt_install,
    capture,
    is_root,
    port_open,
    runs_with,
    say,
    tail,
)

PG_READY_TIMEOUT_S = 60

PG_DIR = LOCAL / "pg"
PG_DATA = PG_DIR / "data"
PG_LOG = PG_DIR / "postgres.log"
PG_RUN = PG_DIR / "run"
PG_CONF_NAME = "attain.conf"


def _bindir() -> Path | None:
    """The bin dir of the PostgreSQL that fits .local/pg/data (the newest one for a new cluster)."""
    found = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl") if (p.parent / "initdb").exists()),
        key=lambda bindir: tuple(int(x) for x in re.findall(r"\d+", bindir.parent.name)) or (0,),
        reverse=True,
    )
    version_file = PG_DATA / "PG_VERSION"
    if version_file.exists():
        want = version_file.read_text().strip()
        for bindir in found:
            if bindir.parent.name == want:
                return bindir
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl:
            out = capture([pg_ctl, "--version"])
            if re.search(rf"\b{re.escape(want)}(\.|\b)", out.stdout):
                return Path(pg_ctl).resolve().parent
        raise StackError(
            f"{PG_DATA} was made by PostgreSQL {want}, which is not installed: "
            f"install postgresql-{want} or delete {PG_DIR} to start afresh"
        )
    if found:
        return found[0]
    pg_ctl, initdb = shutil.which("pg_ctl"), shutil.which("initdb")
    if pg_ctl and initdb:
        return Path(pg_ctl).resolve().parent
    return None


def _owner() -> tuple[int, int]:
    """uid and gid that own .local/pg/data: `postgres` when root (created if missing), else ours."""
    if not is_root():
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--home-dir", "/var/lib/postgresql", "--no-create-home",
             "--shell", "/bin/bash", "postgres"],
            check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path) -> None:
    """Let the postgres OS user reach `path` (o+x on each ancestor that lacks it; nothing else)."""
    if not is_root():
        return
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            say(f"postgres: allowed others to traverse {folder} (o+x) so the postgres user reaches {PG_DIR}")


def _pg_run(cmd: Sequence[str], what: str, timeout: float = 120) -> None:
    """Run a PostgreSQL binary as an OS user it accepts (`postgres` when we are root, never root)."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if is_root() else []
    out = capture([*as_postgres, *cmd], cwd="/", timeout=timeout, new_session=True)
    if out.returncode != 0:
        raise StackError(
            f"{what} failed (exit {out.returncode}): {(out.stdout + out.stderr).strip()}\nlog {PG_LOG}:\n{tail(PG_LOG)}"
        )


def _stop_clusters_started_by_install(port: int) -> None:
    """apt-get may start Debian's `main` cluster on `port`; it is ours to stop, having started it."""
    if not shutil.which("pg_lsclusters"):
        return
    for line in capture(["pg_lsclusters", "--no-header"]).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(port) and fields[3].startswith("online"):
            say(f"postgres: stopping Debian's cluster {fields[0]}/{fields[1]} that the install started on {port}")
            subprocess.run(
                ["pg_ctlcluster", fields[0], fields[1], "stop"],
                check=False,
                stdin=subprocess.DEVNULL,
            )


def local_pid() -> int | None:
    """The postmaster of .local/pg/data, when it runs."""
    try:
        pid = int((PG_DATA / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if runs_with(pid, str(PG_DATA)) else None


def _clear_stale_locks() -> None:
    """Lock files left by a postmaster that was killed: their pid may now be another process's,
    which would make the new postmaster refuse to start ("lock file already exists")."""
    if local_pid() is None:
        for lock in [PG_DATA / "postmaster.pid", *PG_RUN.glob(".s.PGSQL.*.lock")]:
            lock.unlink(missing_ok=True)


def _write_config(port: int, uid: int, gid: int) -> None:
    # A unix socket path is capped at 107 bytes: no socket (TCP only) for a deep checkout.
    sockets = str(PG_RUN) if len(str(PG_RUN)) < 90 else ""
    files = {
        PG_DATA / PG_CONF_NAME: (
            "# Written by deploy/local/pg_cluster.py on every `up` (included from postgresql.conf).\n"
            f"listen_addresses = '{HOST}'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{sockets}'\n"
            "max_connections = 200\n"
            "fsync = on\n"
            "shared_buffers = 128MB\n"
            "log_min_messages = warning\n"
            "log_line_prefix = '%m [%p] %q%u@%d '\n"
        ),
        PG_DATA / "pg_hba.conf": (
            "# Written by deploy/local/pg_cluster.py: a local dev/test cluster, reachable from this machine only.\n"
            "local   all  all                trust\n"
            "host    all  all  127.0.0.1/32  trust\n"
            "host    all  all  ::1/128       trust\n"
        ),
    }
    for path, text in files.items():
        path.write_text(text)
        os.chown(path, uid, gid)
    main_conf = PG_DATA / "postgresql.conf"
    if f"include_if_exists = '{PG_CONF_NAME}'" not in main_conf.read_text():
        with open(main_conf, "a") as handle:
            handle.write(f"\ninclude_if_exists = '{PG_CONF_NAME}'\n")


def start(port: int) -> None:
    """Start the cluster on `port` (creating it first if need be, and installing PostgreSQL if missing)."""
    bindir = _bindir()
    if bindir is None:
        say("postgres: no initdb/pg_ctl found, installing Debian's postgresql (apt-get)...")
        apt_install("postgresql")
        if port_open(HOST, port):
            _stop_clusters_started_by_install(port)
        bindir = _bindir()
        if bindir is None:
            raise StackError("initdb/pg_ctl still missing after `apt-get install postgresql`")
    uid, gid = _owner()
    PG_DIR.mkdir(parents=True, exist_ok=True)
    _make_traversable(PG_DIR)
    for folder in (PG_DATA, PG_RUN):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, uid, gid)
    PG_DATA.chmod(0o700)
    PG_LOG.touch(exist_ok=True)
    os.chown(PG_LOG, uid, gid)
    if not (PG_DATA / "PG_VERSION").exists():
        say(f"postgres: creating a cluster in {PG_DATA.relative_to(ROOT)} ({bindir.parent.name})...")
        _pg_run(
            [str(bindir / "initdb"), "-D", str(PG_DATA), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-locale"],
            "initdb",
        )  # fmt: skip
    _write_config(port, uid, gid)
    _clear_stale_locks()
    _pg_run(
        [str(bindir / "pg_ctl"), "-D", str(PG_DATA), "-l", str(PG_LOG), "-w", "-t", str(PG_READY_TIMEOUT_S), "-s",
         "start"],
        f"starting PostgreSQL (pg_ctl, log {PG_LOG})",
        timeout=PG_READY_TIMEOUT_S + 30,
    )  # fmt: skip


def stop() -> None:
    """Stop the cluster, if it runs (any other server is left alone)."""
    pid = local_pid()
    if pid is None:
        say("postgres: local cluster not running (any other server is left alone)")
        return
    bindir = _bindir()
    if bindir is None:
        raise StackError(f"cannot find pg_ctl to stop the cluster in {PG_DATA} (pid {pid})")
    started = time.monotonic()
    _pg_run([str(bindir / "pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w", "-t", "60", "-s", "stop"], "pg_ctl stop")
    say(f"postgres: stopped the local cluster (pid {pid}) in {time.monotonic() - started:.1f}s")
