"""The benchmark harness behind ``make bench`` (``python -m bench``).

It serves each example notebook four ways on 127.0.0.1 and drives each with a load generator
in a separate process:

    generated       the service ``promoter convert`` writes, under uvicorn (1 worker)
    handwritten     the same logic as a hand-written FastAPI endpoint (bench/handwritten/)
    kernel_gateway  Jupyter Kernel Gateway in notebook-http mode (bench/kernel_gateway/)
    papermill       papermill.execute_notebook per request (bench/papermill_app.py)

It also times the CLI (``promoter --help``, ``promoter inspect --static`` of a generated
500-cell notebook, ``promoter convert`` split into static and kernel time), then writes
bench/results/latest.json, the table in docs/benchmarks.md and docs/images/benchmarks.png.
"""
