"""The sandbox's filesystem, built for real (needs root or user namespaces, like the grader)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from grader import sandbox

pytestmark = pytest.mark.skipif(sandbox.isolation_available().mode == "none",
                                reason="needs Linux namespaces (root or user namespaces)")


def _inside(fs: sandbox.Filesystem, check) -> int:
    """Exit code of ``check()`` run as the sandbox's runner would be: new namespaces, new root."""
    isolation = sandbox.isolation_available()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            sandbox.enter_namespaces(isolation)
            inner = os.fork()
            if inner == 0:
                try:
                    sandbox.build_filesystem(fs, sandbox.Limits(), 0, 0)
                    os._exit(0 if check() else 1)
                except BaseException:
                    os._exit(98)
            _, status = os.waitpid(inner, 0)
            code = os.waitstatus_to_exitcode(status)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_read_only_paths_below_tmp_stay_visible_and_the_course_does_not():
    """A checkout in /tmp (CI's, say) must not vanish under the sandbox's private /tmp."""
    with tempfile.TemporaryDirectory(dir="/tmp") as checkout, tempfile.TemporaryDirectory() as course, \
            tempfile.NamedTemporaryFile(dir="/tmp") as host_file:
        (Path(checkout) / "library.py").write_text("VALUE = 1\n")
        (Path(course) / "gradebook.db").write_text("secret")
        read_only = sandbox.visible_paths(hidden=[course]) + [checkout]
        fs = sandbox.Filesystem(root="/run" if os.path.isdir("/run") else "/mnt", read_only=read_only,
                                files={"notebook.ipynb": b"{}"})

        def check() -> bool:
            private = not os.path.exists(host_file.name)  # the host's /tmp is not the sandbox's
            writable_tmp = Path("/tmp/scratch").write_text("x") == 1
            try:
                (Path(checkout) / "library.py").write_text("changed")
                read_only_ok = False
            except OSError:
                read_only_ok = True
            return (Path(checkout, "library.py").read_text() == "VALUE = 1\n" and read_only_ok
                    and not os.path.exists(course) and os.getcwd() == sandbox.WORKDIR
                    and os.path.exists("notebook.ipynb") and private and writable_tmp)

        assert _inside(fs, check) == 0


def test_no_network_inside():
    import socket

    fs = sandbox.Filesystem(root="/run" if os.path.isdir("/run") else "/mnt",
                            read_only=sandbox.visible_paths(hidden=[]))

    def check() -> bool:
        try:
            socket.create_connection(("127.0.0.1", 22), timeout=1)
        except OSError as error:
            return "unreachable" in str(error).lower() or "refused" in str(error).lower()
        return False

    assert _inside(fs, check) == 0
