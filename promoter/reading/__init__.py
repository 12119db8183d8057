"""Reading: a notebook file becomes a :class:`~promoter.reading.notebook.Notebook`.

Enters: a path to an ``.ipynb`` file. Leaves: the validated notebook (nbformat), each code cell
with its role (parameters, setup, handler, response, skip) and its source as plain Python
(IPython's magics and shell escapes translated, as nbconvert's Python exporter reads them).

- ``notebook``: read, validate, upgrade, give each cell its role, ``metadata.promoter`` settings.
- ``settings``: ``metadata.promoter``, validated.
- ``locate``: where a cell is in the ``.ipynb`` file's text (annotations point there).
- ``source``: a cell's source as Python, and the response cell's last expression.
"""
