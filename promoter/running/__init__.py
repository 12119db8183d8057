"""Running: the notebook executed by papermill on a real kernel, safely.

Enters: a notebook (already cut to the cells that are promoted) and parameters. Leaves: an
:class:`~promoter.running.execute.Execution` (the executed notebook, the answer, the files read)
or an :class:`~promoter.ExecutionError` naming the cell and line.

- ``execute``: papermill's run, the answer captured as JSON, progress reported.
- ``kernel``: promoter's papermill engine (output capped, runaway cells interrupted).
- ``processes``: what the notebook's code started is killed when the run ends.
- ``pool``: worker processes with the heavy imports preloaded (``promoter check``).
"""
