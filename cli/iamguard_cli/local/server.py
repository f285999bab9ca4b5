"""A moto server on 127.0.0.1, with AWS managed policies loaded and root state supported."""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Callable
from types import TracebackType
from typing import Any

from iamguard_cli.local import moto_ext

WsgiApp = Callable[..., Any]
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account


class MotoServer:
    """moto's WSGI app served by werkzeug in a thread; `wrap` may add middleware around it."""

    def __init__(self, port: int = 0, *, wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> None:
        self._port = port
        self._wrap = wrap
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> MotoServer:
        os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        moto_ext.install()
        app: WsgiApp = DomainDispatcherApplication(create_backend_app)
        if self._wrap is not None:
            app = self._wrap(app)

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """Requests are not logged: the terminal belongs to iamguard's own output."""

        self._server = make_server("127.0.0.1", self._port, app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Empty every moto backend, as a new account is. moto's backends are global to the process:
        another server (or a test) in this process may have left resources behind."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310 - 127.0.0.1
        # A reset after thousands of resources takes seconds (tens on a loaded machine): wait for it.
        with urllib.request.urlopen(request, timeout=120):  # noqa: S310 - our own 127.0.0.1 server
            pass
        moto_ext.reset()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
