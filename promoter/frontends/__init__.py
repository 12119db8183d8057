"""Front-ends: thin layers over the library API (``promoter.inspect``, ``promoter.convert``).

Enters: what a user types, clicks or commits. Leaves: what they read (text, JSON, annotations,
JUnit XML, HTML reports, REST answers) and an exit status.

- ``cli``: ``promoter inspect/convert/serve/check``, printed by ``cli_output``.
- ``check``: ``promoter check``: contract, execution, fidelity and drift for CI, with
  ``discover`` (which notebooks and services) and ``reports`` (GitHub, JUnit, HTML).
- ``serve``: ``promoter serve``, regenerating the service when the notebook is saved.
- ``jupyter``: the JupyterLab extension's REST endpoints and their registration, with
  ``jupyter_handler`` (what every endpoint shares: permissions, path confinement, JSON errors),
  ``jupyter_runs`` (the queue of kernel runs), ``jupyter_worker`` (one run per process) and
  ``jupyter_services`` ("Try it": the generated services and the proxy to them) and
  ``jupyter_try`` (a "Try it" service's entry point: the app behind a Host check).
- ``pytest_plugin``: ``pytest --promoter``.
"""
