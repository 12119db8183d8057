"""Building: an inspected notebook becomes a verified service folder.

Enters: a :class:`~promoter.NotebookPlan` per notebook. Leaves: a service folder written
atomically (rendered, verified against the notebook's own answers, formatted, locked).

- ``build``: the sequence: render, verify, render the tests, format, lock, swap in.
- ``render``: the Jinja2 templates (``templates/service``), with ``filters`` for safe literals.
- ``pins``: the service's dependencies, pinned from what the notebook imports.
- ``resources``: the templates and the shipped runtime, from a checkout or a wheel.
- ``output``: the staged folder, the lock file, edited files never overwritten.
- ``drift``: what a service is made of (the lock's fingerprint and data hashes), and staleness.
- ``verify``: the service started in a fresh process and compared with the notebook.
- ``environment``: the service's own environment, built by uv from its pins alone (cached), and
  its ``requirements.lock``.
- ``proof``: the service served over HTTP: varied and concurrent requests, shared state, memory.
- ``fingerprint``: the probe of shared state run inside the service under test (never shipped).
- ``samples``: request bodies generated from a request model (Hypothesis) for the proof.
"""
