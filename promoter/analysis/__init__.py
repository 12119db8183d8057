"""Analysis: what the notebook's code means, read statically (``ast``) and from one run.

Enters: a :class:`~promoter.reading.notebook.Notebook` (and, for the response and files, an
execution of it). Leaves: the request schema, the response schema, the extracted setup and
handler code, and the findings that explain them (isolation, files, non-determinism).

- ``types``: the annotations a request field may use (an allow-list, checked as syntax).
- ``parameters``: the parameters cell becomes a :class:`RequestSchema`.
- ``bounds``: request integers that size an allocation or a loop with no upper bound.
- ``response``: sample answers become a :class:`ResponseSchema` (models, maps, optionals).
- ``code``: one cell's kept code, and the scope rules extraction and the slice share.
- ``extract``: setup and handler code per cell, side effects dropped along the data flow.
- ``magics``: IPython magics and shell escapes, dropped and listed by their real names.
- ``slicing``: the backward slice from the response that drops what only draws or prints.
- ``isolation``: what the handler changes that requests share (copy, serialise, or refuse).
- ``state``: the shared state a handler may change, and the names that resolve to it.
- ``summaries``: what calling a setup function changes (setup names, arguments, state).
- ``datamaps``: the answer's objects the code keys by data (``s.to_dict()``), read as maps.
- ``files``: the data files the run read (audit hook), which travel with the service.
- ``draws``: draws from the global random generators, in any library (pandas, scikit-learn).
- ``localmodules``: the project's own modules and packages the run imported, which travel.
- ``determinism``: the one rule for answers that change from run to run.
"""
