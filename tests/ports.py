"""Free TCP ports for the services a test starts: the kernel's choice, never a fixed number that another run
(or anything else on the machine) may hold."""

from __future__ import annotations

from deploy.local.procs import free_ports

HOST = "127.0.0.1"

__all__ = ["HOST", "free_ports"]
