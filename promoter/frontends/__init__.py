"""Front-ends: thin layers over the library API (``promoter.inspect``, ``promoter.convert``).

Enters: what a user types, clicks or commits. Leaves: what they read (text, JSON, annotations,
JUnit XML, HTML reports, REST answers) and an exit status.

- ``cli``: ``promoter inspect/convert/serve/check``.
- ``check``: ``promoter check``: contract, execution, fidelity and drift for CI, with
  ``discover`` (which notebooks and services) and ``reports`` (GitHub, JUnit, HTML).
- ``serve``: ``promoter serve``, regenerating the service when the notebook is saved.
- ``jupyter``: the JupyterLab extension's REST endpoints, with ``jupyter_worker`` (one run per
  process).
- ``pytest_plugin``: ``pytest --promoter``.
"""
