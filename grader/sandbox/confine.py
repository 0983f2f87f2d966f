"""What the student's process may still do once the sandbox is built: no capability, few system calls.

The sandbox's namespaces decide what a submission can *see*; this module decides
what it can *change*. The runner calls :func:`become_student` after the new root
is in place and before the first cell:

* **No capability in any namespace.** A root grader's runner becomes an
  unprivileged host user. A grader without root runs its sandbox in a user
  namespace where it is uid 0 with every capability of that namespace (it needs
  them to mount the sandbox's filesystem); the runner then makes a second user
  namespace inside it, in which it is the ordinary user ``STUDENT_UID``. In both
  cases the capability bounding and ambient sets are emptied, the securebits that
  would give root its capabilities back are set and locked, and ``no_new_privs``
  is set, so no ``execve`` can gain a capability either.
* **No new namespace, no mount, no anonymous memory outside the limits.** A
  seccomp filter refuses (``EPERM``) ``unshare``, ``setns``, ``clone`` with a
  namespace flag, the mount family (``mount``, ``umount2``, ``pivot_root``,
  ``chroot``, the new mount API), ``memfd_create``, ``memfd_secret``, System V
  ``shmget`` and ``msgget`` (memory the address-space limit does not count),
  ``io_uring`` (whose operations no filter sees), ``ptrace`` and
  ``process_vm_readv/writev``, the kernel keyring, ``bpf``,
  ``perf_event_open`` and ``userfaultfd``. ``clone3`` answers ``ENOSYS`` (its
  flags cannot be inspected), so the C library falls back to ``clone``. System
  calls of another ABI (x32, or 32-bit ones on a 64-bit kernel) kill the process.

A user namespace that the student could create would give it every capability
again, inside that namespace: enough to mount a tmpfs (memory no limit counts) or
to ``chroot`` its way back up a mount tree. With the filter, it cannot make one.

The filter is written for x86_64 and aarch64; on other processors
:func:`seccomp_supported` is False and the grader says so in its summary.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from pathlib import Path

from grader.sandbox.linux import (CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS,
                            _check, _libc, prctl, unshare)

#: The student's user id inside the sandbox's inner user namespace (grader without root).
STUDENT_UID = 1000

CLONE_NEWCGROUP = 0x02000000
CLONE_NEWTIME = 0x00000080
NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
                   | CLONE_NEWCGROUP | CLONE_NEWTIME)

PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SECBIT_NOROOT, SECBIT_NOROOT_LOCKED = 1 << 0, 1 << 1
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE, SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 6, 1 << 7
#: Root gets no capabilities back through execve, ambient capabilities cannot be raised, and the
#: kernel still clears capabilities when the uid changes from 0 (the fix-up is locked on, not off).
SECUREBITS = (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED
              | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Classic BPF, as seccomp reads it.
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0_LOW = 0, 4, 16  # struct seccomp_data, little-endian

#: System call numbers that x86_64 and aarch64 share (the newer calls, numbered alike everywhere).
_SHARED_NUMBERS = {"clone3": 435, "memfd_secret": 447, "open_tree": 428, "move_mount": 429, "fsopen": 430,
                   "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "io_uring_setup": 425,
                   "io_uring_enter": 426, "io_uring_register": 427}
#: Per processor: the audit architecture, the first number of another ABI, and the system call numbers.
ARCHITECTURES = {
    "x86_64": (0xC000003E, 0x40000000, {
        **_SHARED_NUMBERS, "clone": 56, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
        "pivot_root": 155, "chroot": 161, "memfd_create": 319, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
        "perf_event_open": 298, "userfaultfd": 323, "shmget": 29, "msgget": 68}),
    "aarch64": (0xC00000B7, None, {
        **_SHARED_NUMBERS, "clone": 220, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "chroot": 51, "memfd_create": 279, "ptrace": 117, "process_vm_readv": 270,
        "process_vm_writev": 271, "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "shmget": 194, "msgget": 186}),
}
#: System calls refused outright (everything in the table but clone, which is refused by its flags).
REFUSED = ("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "memfd_create", "memfd_secret",
           "ptrace", "process_vm_readv", "process_vm_writev", "keyctl", "add_key", "request_key", "bpf",
           "perf_event_open", "userfaultfd", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
           "fspick", "mount_setattr", "shmget", "msgget", "io_uring_setup", "io_uring_enter", "io_uring_register")

def seccomp_supported() -> bool:
    return platform.machine() in ARCHITECTURES


def syscall_number(name: str) -> int:
    """This processor's number for a system call of the table (tests make the calls through ctypes)."""
    return ARCHITECTURES[platform.machine()][2][name]


def become_student(mode: str, uid: int | None, gid: int | None) -> None:
    """In the runner, before any student code: the student's identity, and nothing it could use to leave.

    ``mode`` is the sandbox's isolation: "root" (become host user ``uid``), "userns"
    (become ``STUDENT_UID`` of a new user namespace inside the sandbox's) or "none"
    (stay the grader's user, which has no capability to drop).
    """
    if mode == "userns":
        _enter_student_namespace()
    if mode in ("root", "userns"):
        prctl(PR_SET_SECUREBITS, SECUREBITS)
        for capability in range(_last_capability() + 1):
            prctl(PR_CAPBSET_DROP, capability)
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if mode == "root":
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # from uid 0 to another: the kernel clears every capability
    if mode in ("root", "userns"):
        _drop_all_capabilities()
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_supported():
        _install_filter()


def _enter_student_namespace() -> None:
    """A user namespace in which this process is the ordinary user STUDENT_UID (and group)."""
    outer_uid, outer_gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{STUDENT_UID} {outer_uid} 1")
    Path("/proc/self/gid_map").write_text(f"{STUDENT_UID} {outer_gid} 1")


def _last_capability() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


def _drop_all_capabilities() -> None:
    header = struct.pack("=Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)  # two of {effective, permitted, inheritable}, all zero
    _check(_libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)), "capset")


def _instruction(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The seccomp filter, as classic BPF instructions (see the module's docstring)."""
    arch, other_abi, numbers = ARCHITECTURES[machine or platform.machine()]
    refuse = SECCOMP_RET_ERRNO | errno.EPERM
    program = [
        _instruction(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
        _instruction(BPF_JEQ_K, 1, 0, arch),
        _instruction(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        _instruction(BPF_LD_W_ABS, 0, 0, OFFSET_NR),
    ]
    if other_abi is not None:
        program += [_instruction(BPF_JGE_K, 0, 1, other_abi), _instruction(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)]
    for name in REFUSED:
        program += [_instruction(BPF_JEQ_K, 0, 1, numbers[name]), _instruction(BPF_RET_K, 0, 0, refuse)]
    program += [
        _instruction(BPF_JEQ_K, 0, 1, numbers["clone3"]),
        _instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        _instruction(BPF_JEQ_K, 0, 3, numbers["clone"]),
        _instruction(BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW),
        _instruction(BPF_JSET_K, 0, 1, NAMESPACE_FLAGS),
        _instruction(BPF_RET_K, 0, 0, refuse),
        _instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _install_filter() -> None:
    program = filter_program()
    fprog = _SockFprog(len(program) // 8, program)
    _check(_libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), "seccomp")
