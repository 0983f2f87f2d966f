"""A throwaway PostgreSQL server for the tests: a new cluster in a temporary folder, on a local socket only.

Run as an unprivileged user (nobody, through ``setpriv``) when the tests run as root,
since PostgreSQL refuses to run as root; stopped and deleted afterwards. Tests that
need it are skipped where PostgreSQL's server programs are not installed.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NOBODY = 65534


def server_programs() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian's layout, or initdb on PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def throwaway_server():
    """Yield ``make_database(name) -> SQLAlchemy URL`` for a running server; stop and delete it after."""
    programs = server_programs()
    if programs is None:
        raise FileNotFoundError("PostgreSQL's initdb is not installed")
    as_user = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            raise FileNotFoundError("running as root needs setpriv to start PostgreSQL as an unprivileged user")
        as_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    top = Path(tempfile.mkdtemp(prefix="grader-pg-", dir="/tmp"))
    try:
        top.chmod(0o755)
        data, sockets = top / "data", top / "sockets"
        for folder in (data, sockets):
            folder.mkdir(mode=0o700)
            if as_user:
                os.chown(folder, NOBODY, NOBODY)

        def run(*command: str) -> None:
            done = subprocess.run([*as_user, *command], capture_output=True, text=True, cwd=top, timeout=120)
            if done.returncode:
                raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")

        run(str(programs / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust", "--no-sync", "-E", "UTF8")
        port = "5433"
        run(str(programs / "pg_ctl"), "-D", str(data), "-w", "-l", str(sockets / "log"), "-o",
            f"-k {sockets} -c listen_addresses='' -p {port} -c fsync=off", "start")
        try:
            def make_database(name: str) -> str:
                run(str(programs / "createdb"), "-h", str(sockets), "-p", port, "-U", "grader", name)
                return f"postgresql+psycopg://grader@/{name}?host={sockets}&port={port}"

            yield make_database
        finally:
            run(str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(top, ignore_errors=True)
