"""The HTTP server: one live engine (one policy) behind the OpenAI-compatible app, until stopped.

Two threads: the engine runs `LiveServer.run` (or a `DistributedServer`'s, for --tp/--pp) over
an `OnlineArrivals` source in its own thread; uvicorn's event loop runs the app in the calling
thread (`serve`, the CLI: it takes SIGINT and SIGTERM) or in a background thread (`start` and
`stop`, tests). The socket is bound before either starts, so port 0 gets a free port and
`port` knows it at once.

Stopping (a signal, `stop`, or the engine failing): the source stops first, so new requests
get 503 and the engine records every request it holds as unfinished with the reason, which
ends their streams; then uvicorn closes its connections. The engine's `RunResult` has one row
per request ever submitted. uvicorn would re-raise a caught signal after its shutdown, which
kills the process before the caller writes the run directory, so signals are captured here.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
import time

import uvicorn

from executor.http.app import FrontEnd
from executor.http.protocol import Limits
from executor.online import OnlineArrivals
from policy import Job, make_scheduler

START_TIMEOUT_S = 30.0
# While the engine thread computes, the event loop gets the GIL only when the engine is made to
# let go of it, every switch interval: CPython's default 5 ms would delay each token's chunk
# (and each arriving request) by up to that much. The engine pays for a handoff only when
# the loop actually waits for the GIL.
SWITCH_INTERVAL_S = 0.0005
STOP_TIMEOUT_S = 30.0  # the engine stops at its next check: one plan plus OnlineArrivals.wait_s


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_exit) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame) -> None:
        self._on_exit(f"server stopped ({signal.Signals(sig).name})")
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for connections
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class HttpServer:
    def __init__(self, live, policy: str, config, cost, model_name: str, codec, host: str = "127.0.0.1",
                 port: int = 0, wait_s: float = 0.5) -> None:
        self.live, self.policy, self.config, self.cost = live, policy, config, cost
        self.arrivals = OnlineArrivals(wait_s)
        checker = make_scheduler(policy, config, cost)  # refuses a bad configuration before binding

        def reject_reason(prompt_tokens: int, max_tokens: int) -> str | None:
            return checker.reject_reason(Job(id=-1, arrival_s=0.0, prompt_tokens=prompt_tokens, output_tokens=max_tokens))

        limits = Limits(model_name, live.model.config.vocab_size, config.max_seq_tokens, reject_reason)
        info = {"policy": policy, "swap": checker.swap_mode}
        self.app = FrontEnd(self.arrivals, limits, codec, info).app()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets
        # that say they are TCP, and with Nagle on, a keep-alive client's delayed ACK holds each
        # response's body behind its headers for ~40 ms.
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}") from None
        self.host, self.port = host, self.sock.getsockname()[1]
        self._uvicorn = _Uvicorn(uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                                timeout_graceful_shutdown=10), self.arrivals.stop)
        self.result = None
        self.swap_mode: str | None = None
        self.error: BaseException | None = None
        self._engine = threading.Thread(target=self._run_engine, name="fastserve-engine", daemon=True)
        self._loop: threading.Thread | None = None
        self._switch_interval_s = sys.getswitchinterval()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run_engine(self) -> None:
        try:
            self.result, self.swap_mode = self.live.run(self.arrivals, self.policy, self.config, self.cost)
        except BaseException as e:  # noqa: BLE001 - reported by serve/stop, the server must still stop
            self.error = e
        finally:
            self.arrivals.stop("the engine stopped" if self.error is None else f"the engine failed: {self.error}")
            self._uvicorn.should_exit = True

    def _start_engine(self) -> None:
        self._switch_interval_s = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._engine.start()

    def serve(self):
        """Serve in this thread until SIGINT/SIGTERM or the engine stops; returns (RunResult, swap)."""
        self._start_engine()
        try:
            self._uvicorn.run(sockets=[self.sock])
        finally:
            self.arrivals.stop("server shut down")
            self._engine.join(STOP_TIMEOUT_S)
            self.sock.close()
        return self._outcome()

    def start(self) -> None:
        """Serve from background threads (tests); returns once the socket accepts requests."""
        self._start_engine()
        self._loop = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self.sock]},
                                      name="fastserve-http", daemon=True)
        self._loop.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._uvicorn.started and self._loop.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._uvicorn.started:
            raise RuntimeError(f"the HTTP server did not start within {START_TIMEOUT_S} s")

    def stop(self, reason: str = "server stopped"):
        """Stop a `start`ed server; returns (RunResult, swap)."""
        self.arrivals.stop(reason)
        self._engine.join(STOP_TIMEOUT_S)
        self._uvicorn.should_exit = True
        if self._loop is not None:
            self._loop.join(STOP_TIMEOUT_S)
        self.sock.close()
        return self._outcome()

    def _outcome(self):
        sys.setswitchinterval(self._switch_interval_s)
        if self._engine.is_alive():
            raise RuntimeError(f"the engine did not stop within {STOP_TIMEOUT_S} s")
        if self.error is not None:
            raise self.error
        return self.result, self.swap_mode
