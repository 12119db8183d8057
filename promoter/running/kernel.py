"""The kernel a notebook runs in: this Python, its output capped, its processes ended.

papermill's extension point for how a notebook runs is an engine (``papermill_engines``);
promoter registers one, ``promoter``, that is papermill's nbclient engine with two bounds:

- Output: every output the kernel sends (prints, displays, tracebacks) is counted as it
  arrives; past the run's limit further outputs are dropped, not kept, and the kernel is
  interrupted (killed if it goes on), so a cell printing without end costs a bounded amount
  of memory and stops with a clear error (:class:`OutputLimitExceeded`) instead of growing
  the process by gigabytes until the cell timeout.
- Processes: the kernel runs in its own session (as jupyter_client starts it); what its code
  starts there is killed once the run is done (:class:`promoter.running.processes.ProcessGroup`), so
  a setup cell's ``subprocess.Popen`` or server does not outlive the run.

Imported only when a notebook runs: it imports papermill and nbclient.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellExecutionError
from nbclient.util import ensure_async, run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from traitlets import default

from promoter.running.processes import ProcessGroup

__all__ = ["ENGINE", "KernelRun", "OutputLimitExceeded"]

#: The papermill engine name promoter runs notebooks with.
ENGINE = "promoter"
#: The least time between two interrupts of a kernel that keeps printing past the limit.
_INTERRUPT_EVERY = 1.0
#: Interrupts before a kernel that keeps printing past the limit is killed.
_INTERRUPTS = 3


class OutputLimitExceeded(Exception):
    """The run's output passed its limit while the cell at ``cell_index`` ran."""

    def __init__(self, cell_index: int, limit: int) -> None:
        super().__init__(f"cell {cell_index} passed the output limit of {limit} characters")
        self.cell_index = cell_index
        self.limit = limit


@dataclass
class KernelRun:
    """What one run needs beyond papermill's arguments, and what it leaves to clean up.

    Attributes:
        max_output: Characters of output the whole run may produce.
        uncounted: A MIME type whose outputs are not counted (promoter's own capture).
        stderr: Where the kernel's own stdout and stderr go (not the cells' output).
        used: Characters of output seen so far.
        over_at: The cell (index in the run's notebook) that passed the limit, if one did.
        group: The kernel's processes, once it started.
    """

    max_output: int
    uncounted: str
    stderr: IO[str]
    used: int = 0
    over_at: int | None = None
    group: ProcessGroup | None = None
    _interrupted: float = field(default=float("-inf"), repr=False)
    _interrupts: int = field(default=0, repr=False)

    def count(self, msg: dict[str, Any], cell_index: int) -> bool:
        """Count an output message; whether the run is past its limit."""
        self.used += _size(msg.get("content", {}), self.uncounted)
        if self.used > self.max_output and self.over_at is None:
            self.over_at = cell_index
        return self.over_at is not None

    def next_signal(self) -> int | None:
        """The signal to send the kernel's process group now that the run is past its limit.

        An interrupt (KeyboardInterrupt in the cell) at most once a second while output keeps
        coming; a kernel still printing after a few (its code catches KeyboardInterrupt) is
        killed, rather than left printing into the void until the cell's timeout.
        """
        now = time.monotonic()
        if now - self._interrupted < _INTERRUPT_EVERY:
            return None
        self._interrupted = now
        self._interrupts += 1
        if self._interrupts <= _INTERRUPTS:
            return signal.SIGINT
        if self.group is not None:
            self.group.remember()  # its children, before the kernel's death orphans them
        return signal.SIGKILL

    def end(self) -> None:
        """Kill whatever the kernel's code started that is still running (and the kernel)."""
        if self.group is not None:
            self.group.kill()


def _size(content: dict[str, Any], uncounted: str) -> int:
    if "text" in content:  # a stream
        return len(str(content["text"]))
    data = content.get("data")
    if isinstance(data, dict) and uncounted in data:
        return 0
    return len(json.dumps(content, default=str))


class _Client(PapermillNotebookClient):  # type: ignore[misc]
    """papermill's client, with the run's output counted and capped."""

    run: KernelRun

    def output(
        self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> Any:
        if not self.run.count(msg, cell_index):
            return super().output(outs, msg, display_id, cell_index)
        signum = self.run.next_signal()
        if self.km is not None and signum is not None:
            # SIGINT: KeyboardInterrupt in the cell, which ends with an error reply, every task
            # of nbclient's ending as for any failing cell. SIGKILL: nbclient's dead kernel.
            self._signal = asyncio.ensure_future(ensure_async(self.km.signal_kernel(signum)))
        return None

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kw: Any) -> Any:
        try:
            executed = await super().async_execute_cell(cell, cell_index, *args, **kw)
        except (CellExecutionError, RuntimeError, TimeoutError):
            if self.run.over_at is not None:
                raise OutputLimitExceeded(self.run.over_at, self.run.max_output) from None
            raise
        if self.run.over_at is not None:
            raise OutputLimitExceeded(self.run.over_at, self.run.max_output)
        return executed

    execute_cell = run_sync(async_execute_cell)


class _Engine(NBClientEngine):  # type: ignore[misc]
    """papermill's nbclient engine, running :class:`_Client` (the same arguments)."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        *,
        run: KernelRun,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        kwargs.pop("input_path", None)
        client = _Client(
            nb_man,
            kernel_name=kernel_name,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            log=logging.getLogger("papermill"),
            kernel_manager_class=kernel_manager_class(run),
            **kwargs,
        )
        client.run = run
        return client.execute()


def kernel_manager_class(run: KernelRun) -> type[AsyncKernelManager]:
    """The kernel manager of one run: this Python, output to a file, processes remembered.

    A class, not an instance: nbclient shuts down (and closes the sockets of) only the kernels
    whose manager it created itself; a manager passed in leaked one kernel per run.
    """

    # The kernel is always this interpreter, whatever kernelspec the notebook names: the
    # service will run in this environment, so the notebook must be proven here too.
    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python (promoter)",
                language="python",
                resource_dir="",
            )

    # Async, as nbclient's own default: with a blocking manager nbclient's output poll blocks the
    # event loop, so a cell that prints nothing never hits the execution timeout.
    class Manager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _this_python(self) -> KernelSpecManager:
            return ThisPython()

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            # The kernel's own output (low-level warnings such as "running over TCP without
            # encryption") goes to a file that is shown only if the kernel dies; what its
            # children inherit then holds no pipe of promoter's caller open.
            kw["stdout"] = kw["stderr"] = run.stderr
            await super()._async_launch_kernel(kernel_cmd, **kw)
            pid = getattr(self.provisioner, "pid", None)
            run.group = ProcessGroup.of(pid) if isinstance(pid, int) else None

        async def shutdown_kernel(  # type: ignore[override]  # async, as its base class
            self, now: bool = False, restart: bool = False
        ) -> None:
            if run.group is not None:
                run.group.remember()  # its children, before the kernel's exit orphans them
            await super().shutdown_kernel(now=now, restart=restart)

    return Manager


papermill_engines.register(ENGINE, _Engine)
