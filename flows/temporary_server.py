"""The temporary Prefect server of one supervised `boligdata run` (flows/guard.py), started beside the
run instead of by it.

With no PREFECT_API_URL, Prefect starts a temporary server when the run first calls its API: after
the run has imported Prefect and our modules (1.9 s into a national first run), and the server then
imports its own modules (3 s of one core) and answers at 7.3 s, while the run waits with a core idle.
So the supervisor starts this module as the command starts, in the run's process group (it cannot
outlive the run), on a listening socket the supervisor opened (the port is the run's from the
start; a request made before the server serves waits in the socket's queue instead of failing):

    python -m flows.temporary_server FD

It serves what Prefect's temporary server serves: Prefect's public app factory with `ephemeral=True`
(no UI; a temporary server's services, which record task runs and events), run by uvicorn as
`prefect server start` runs it. The run and this process decide alike, from Prefect's settings,
whether a temporary server is wanted (`wanted`): with a server of the operator's, this process exits
at once and the run uses theirs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

RUN_SERVER_ENV = "BOLIGDATA_RUN_SERVER"  # the API URL of the server started beside the run, set for the run


def start(**popen_kwargs) -> tuple[subprocess.Popen, str]:
    """This module's server in a new process, on a socket that listens on a free port of 127.0.0.1 from
    now on, and the API URL it will answer on. POPEN_KWARGS: the process group, output, environment."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        server = subprocess.Popen([sys.executable, "-m", "flows.temporary_server", str(listening.fileno())],
                                  pass_fds=(listening.fileno(),), **popen_kwargs)
        return server, f"http://127.0.0.1:{listening.getsockname()[1]}/api"


def wanted() -> bool:
    """Whether Prefect would start a temporary server: no API URL set, ephemeral mode on."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


def server_settings() -> dict:
    """Prefect settings for a temporary server: it does not register block types on start, unless the
    operator set either setting. That imports every installed Prefect collection (prefect-dask, dask and
    distributed: 0.25 s) for a catalogue no boligdata run reads; a standing server (`boligdata serve`,
    `prefect server start`) registers them as usual."""
    from prefect.settings import (
        PREFECT_API_BLOCKS_REGISTER_ON_START,
        PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION,
        get_current_settings,
    )

    if get_current_settings().server.model_fields_set & {"register_blocks_on_start", "memoize_block_auto_registration"}:
        return {}
    return {PREFECT_API_BLOCKS_REGISTER_ON_START: False, PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION: False}


def wait_until_serving(api_url: str, timeout: float) -> None:
    """Return once the server answers its health check; raise RuntimeError, in one line, if it has not
    within TIMEOUT seconds or if it is gone (its process exited: the socket is closed)."""
    import urllib.error  # here, not at the top: the supervisor imports this module on its way to start the run
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"Timed out while attempting to connect to the run's temporary Prefect API server "
                               f"within {timeout:g} s (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
        try:  # the socket listens already: this waits in its queue until the server serves
            with urllib.request.urlopen(f"{api_url}/health", timeout=remaining) as answer:
                if answer.status == 200:
                    return
        except (TimeoutError, urllib.error.HTTPError):  # not yet, or not yet ready to say it is healthy
            pass
        except (ConnectionError, urllib.error.URLError) as error:
            reason = getattr(error, "reason", error)
            if not isinstance(reason, TimeoutError):
                raise RuntimeError(f"the run's temporary Prefect API server stopped before it answered ({reason})"
                                   ) from None
        time.sleep(0.05)


def serve(fd: int) -> None:
    """Serve Prefect's API on the listening socket FD until stopped (SIGTERM, as Prefect stops its own)."""
    listening = socket.socket(fileno=fd)
    if not wanted():
        return
    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import temporary_settings

    with temporary_settings(updates=server_settings()):
        app = create_app(ephemeral=True, final=True)
        uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on")).run(sockets=[listening])


if __name__ == "__main__":
    serve(int(sys.argv[1]))
