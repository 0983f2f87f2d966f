"""The sandbox: one notebook run in namespaces, a seccomp filter and a cgroup, by pre-warmed workers."""
