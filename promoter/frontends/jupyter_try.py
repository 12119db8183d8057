"""The entry point of a "Try it" service: the generated app, answering only the Jupyter proxy.

``uvicorn promoter.frontends.jupyter_try:app --uds <socket>``, started in the service folder by
``jupyter_services`` with ``PROMOTER_TRY_HOST`` set. The socket lies in a folder only the
server's user can enter; on top of that the app answers 400 to any ``Host`` but the one the
proxy sends (a per-service name no DNS resolves), so a request that found another way to the
socket is still refused.
"""

from __future__ import annotations

import os

from app.main import app as service  # type: ignore[import-not-found]  # the service folder's
from starlette.middleware.trustedhost import TrustedHostMiddleware

__all__ = ["app"]

app = TrustedHostMiddleware(service, allowed_hosts=[os.environ["PROMOTER_TRY_HOST"]])
