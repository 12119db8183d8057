"""The process trees promoter starts around a notebook's code, and how they end.

The notebook's kernel and the verifier of a generated service each run in a session of their
own (a process group), so what the notebook's code starts there (``subprocess.Popen``, a
server, a grandchild that outlives its parent and is adopted by init) stays findable: by its
group, and by descent while its parent lives. When the run is done, all of it is killed: a run
leaves no process behind, whatever the notebook started.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

import psutil

__all__ = ["ProcessGroup"]

#: How long to wait for killed processes to be gone (SIGKILL takes effect at once; this only
#: covers a loaded machine's scheduling).
_GONE_WAIT = 5.0


@dataclass
class ProcessGroup:
    """The processes of one session: its leader, its descendants, its process group.

    A process counts as a member if it is in the leader's process group and was created no
    earlier than the leader (so a reused process id is never mistaken for a member), or if it
    descended from the leader when :meth:`remember` last looked (a child that left the group
    with its own session is still found).
    """

    pgid: int
    since: float
    known: set[psutil.Process] = field(default_factory=set)

    @classmethod
    def of(cls, pid: int) -> ProcessGroup | None:
        """The group led by process ``pid`` (started with ``start_new_session=True``)."""
        try:
            leader = psutil.Process(pid)
            return cls(os.getpgid(pid), leader.create_time(), {leader})
        except (psutil.Error, OSError):
            return None

    def remember(self) -> None:
        """Note every current descendant of the known processes (before the leader exits)."""
        for process in list(self.known):
            with contextlib.suppress(psutil.Error):
                self.known.update(process.children(recursive=True))

    def members(self) -> list[psutil.Process]:
        """The live members (zombies, which hold no resources, excluded)."""
        self.remember()
        found = set(self.known)
        for process in psutil.process_iter(["create_time"]):
            with contextlib.suppress(psutil.Error, OSError):
                created = process.info["create_time"]
                mine = created is not None and created >= self.since
                if mine and os.getpgid(process.pid) == self.pgid:
                    found.add(process)
        return [p for p in found if _alive(p)]

    def kill(self, *, spare: int | None = None) -> int:
        """SIGKILL every member but ``spare``; wait (briefly) until they are gone.

        Returns:
            How many processes were killed.
        """
        members = [p for p in self.members() if p.pid != spare]
        for process in members:
            with contextlib.suppress(psutil.Error):
                process.kill()
        deadline = time.monotonic() + _GONE_WAIT
        while any(_alive(p) for p in members) and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(members)


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
