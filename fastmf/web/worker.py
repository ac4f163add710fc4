"""One worker process of ``fastmf web --workers N``: Django set up from the environment the parent
command configured, the served model loaded once, then requests served one at a time from the
listening socket the parent passes by file descriptor (the parent's workers all accept from it, so
a request waits in the socket's queue, not in a busy worker, as with gunicorn's sync workers).

Run as ``python -m fastmf.web.worker FD`` by :func:`fastmf.web.serve.serve`, never by hand.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.core.wsgi import get_wsgi_application

from fastmf.web import serve
from fastmf.web.engine import get_engine


def server_on(listening: socket.socket) -> WSGIServer:
    """A sequential Django WSGI server accepting from an already bound and listening socket."""
    address = listening.getsockname()
    httpd = WSGIServer(
        address[:2], WSGIRequestHandler, ipv6=listening.family == socket.AF_INET6, bind_and_activate=False
    )
    httpd.socket.close()
    httpd.socket = listening
    httpd.server_address = address
    httpd.server_name, httpd.server_port = str(address[0]), int(address[1])
    httpd.setup_environ()
    httpd.set_app(get_wsgi_application())
    return httpd


def exit_with_parent(parent: int, seconds: float = 1.0) -> None:
    """Exit this process as soon as ``parent`` is no longer its parent (the command was killed)."""

    def watch():
        while os.getppid() == parent:
            time.sleep(seconds)
        os._exit(0)

    threading.Thread(target=watch, name="fastmf-parent-watch", daemon=True).start()


def main(fd: int) -> None:
    exit_with_parent(os.getppid())
    serve.setup()
    get_engine().current()  # load the model before the first request
    httpd = server_on(socket.socket(fileno=fd))
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
