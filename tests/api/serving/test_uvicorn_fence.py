"""The uvicorn internals ``api.serving.http_protocol`` builds on, checked by name.

Our protocol subclasses uvicorn's ``HttpToolsProtocol`` and reads attributes that are not
uvicorn's public API. pyproject.toml pins the uvicorn range the suite was run with; if a
release inside that range (or a widened pin) renames one of them, this test says which, before
the hit path fails in some less obvious way.
"""

from __future__ import annotations

import asyncio
import signal

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.server import ServerState

METHODS = ("on_url", "on_header", "on_headers_complete", "on_body", "on_message_complete",
           "send_400_response", "_unset_keepalive_if_required", "timeout_keep_alive_handler",
           "connection_made", "data_received")
ATTRIBUTES = ("app", "pipeline", "flow", "cycle", "parser", "server_state", "timeout_keep_alive",
              "timeout_keep_alive_task", "root_path", "scope", "url", "transport", "loop")
PARSER_METHODS = ("get_method", "should_upgrade", "get_http_version", "should_keep_alive")


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 8080) if name in ("sockname", "peername") else default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _missing(obj: object, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not hasattr(obj, name)]


def _why(missing: list[str]) -> str:
    return (f"uvicorn {uvicorn.__version__} no longer has {missing}, which "
            "api/serving/http_protocol.py relies on: adapt it, then widen the pin in "
            "pyproject.toml")


def test_the_internals_we_use_exist() -> None:
    async def check() -> None:
        async def app(scope: object, receive: object, send: object) -> None:
            pass

        config = Config(app, lifespan="off", log_level="warning")
        config.load()
        protocol = httptools_impl.HttpToolsProtocol(config, ServerState(),
                                                    config.loaded_app)
        protocol.connection_made(_Transport())
        protocol.data_received(b"GET /x HTTP/1.1\r\nhost: a\r\n")  # head not complete yet
        missing = _missing(type(protocol), METHODS) + _missing(protocol, ATTRIBUTES)
        missing += [f"flow.{n}" for n in _missing(protocol.flow, ("write_paused",))]
        missing += [f"parser.{n}" for n in _missing(protocol.parser, PARSER_METHODS)]
        missing += [f"server_state.{n}" for n in _missing(protocol.server_state,
                                                          ("default_headers", "total_requests"))]
        assert not missing, _why(missing)
        assert isinstance(httptools_impl.STATUS_LINE[200], bytes), _why(["STATUS_LINE"])

    asyncio.run(check())


SUPERVISOR_METHODS = ("init_processes", "restart_all", "keep_subprocess_alive", "handle_ttin",
                      "handle_ttou", "handle_term", "handle_int")
SUPERVISOR_ATTRIBUTES = ("config", "sockets", "processes", "processes_num", "should_exit")
PROCESS_METHODS = ("start", "kill", "join", "terminate", "is_alive", "wait_until_ready")


def test_the_supervisor_internals_we_override_exist() -> None:
    """``api.serving.server.Supervisor`` replaces uvicorn's process-creating methods to give
    each worker its own socket: they must still be the ones uvicorn calls, with the state they
    read."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess
    from uvicorn.supervisors.multiprocess import SIGNALS, Process

    config = Config("api.serving.app:create_app", workers=2, log_level="warning")
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        supervisor = Multiprocess(config, sockets=[])  # it installs its signal handlers...
    finally:
        for sig, handler in handlers.items():  # ...which this test process must not keep
            signal.signal(sig, handler)
    missing = _missing(Multiprocess, SUPERVISOR_METHODS) + _missing(supervisor,
                                                                    SUPERVISOR_ATTRIBUTES)
    missing += [f"Process.{n}" for n in _missing(Process, PROCESS_METHODS)]
    missing += [] if isinstance(STARTUP_FAILURE, int) else ["STARTUP_FAILURE"]
    assert not missing, _why(missing)
