"""A `boligdata run` whose processes cannot outlive it, and the cheap "nothing new" check before it.

A run with no PREFECT_API_URL needs a temporary Prefect API server. Started by Prefect, it is a child
process of the process that runs the flow (Prefect 3.8.8, its subprocess ASGI server), stopped at exit
(atexit), which does not happen when the run is SIGKILLed or the OOM killer takes it, and not for a
server Prefect gave up on after PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS and replaced by
another. So `boligdata run` does the work in a child it supervises, inside a process group that this
module creates, and starts the run's server itself, beside the run (flows/temporary_server.py: it is
up 3 s earlier than one Prefect starts once the run has imported Prefect):

    boligdata run (supervisor: stays in the caller's group, e.g. make's; imports no Prefect)
      ├─ watchdog   leader of a new process group G; reads a pipe only the supervisor can write to
      ├─ server     the run's temporary Prefect server, in G (none with the operator's PREFECT_API_URL)
      └─ the run    `python -m flows.cli run ...` in G, and a server Prefect starts (its child, in G) if
                    the run's own could not be started

- the run ends in any way (done, failed, killed by a signal or the OOM killer): the supervisor sees it
  exit (without reaping it, so the group's id cannot be reused meanwhile), stops the run's server as
  Prefect stops its own (SIGTERM, at most 5 s) and SIGKILLs what is left of G: a server Prefect did not
  stop, the watchdog;
- the supervisor is SIGKILLed: the kernel closes its end of the pipe, the watchdog reads end-of-file
  and SIGKILLs G, the run and the server with it;
- Ctrl-C reaches the terminal's foreground group (the supervisor's, not G): the supervisor passes it
  on to the run, which stops with one line; a second Ctrl-C (a second or more later) kills G at once.
  SIGTERM and SIGHUP are passed on as SIGTERM (unless ignored, as under nohup).

Why this and not the alternatives: PR_SET_PDEATHSIG would have to be set inside a server process
that Prefect starts with its own Popen; it also fires when the creating *thread* exits, and Prefect
starts the server from whichever thread first needs the API. A watchdog thread inside the run dies
with the run and depends on that interpreter getting the GIL. A separate pipe-watching process relies
only on the kernel closing a dead process's file descriptors, and on process groups, both standard
POSIX (Linux and macOS). We only ever signal G, a group we created: never the caller's group, which
under `make demo` is make's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SUPERVISED_ENV = "BOLIGDATA_SUPERVISED"  # set in the run the supervisor starts: do the work here
DOUBLE_INTERRUPT_S = 1.0  # a second Ctrl-C later than this after the first kills the run at once

# The watchdog: tiny, no site packages, ignores Ctrl-C (the supervisor decides), kills its group
# (itself included) once the supervisor's end of the pipe on its stdin is closed.
_WATCHDOG = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "while sys.stdin.buffer.read(4096):\n"
    "    pass\n"
    "os.killpg(os.getpgrp(), signal.SIGKILL)\n"
)


def nothing_new(landing: Path, warehouse: Path, reference_dir: Path | None) -> str | None:
    """The run's "nothing new" line if the published ledger already holds every landed file (source,
    name, sha256) and the marts were built from the current reference data and models; else None.

    The flow's own decision (flows/pipeline.py), made from the same functions, in plain Python: no
    Prefect or Great Expectations is imported on this path. When in doubt (an unreadable ledger),
    None: the flow decides and reports."""
    import datetime as dt

    from warehouse.files import internal_file

    if not internal_file(Path(warehouse)).exists():  # a first run: decided before the imports below (0.3-0.5 s)
        return None
    from transforms.ledger.deliveries import LedgerSnapshot, plan_deliveries
    from transforms.ledger.runs import RunSummary
    from transforms.reference import reference_for
    from warehouse.build import published_is_current
    from warehouse.materialize import model_fingerprint

    landing_dir, warehouse_file = Path(landing).resolve(), Path(warehouse).resolve()
    try:
        reference = reference_for(warehouse_file, reference_dir)
        ledger = LedgerSnapshot.read(warehouse_file)
        if ledger.model_fingerprint is None or ledger.model_fingerprint != model_fingerprint(reference):
            return None
        if plan_deliveries(landing_dir, ledger):
            return None
        if not published_is_current(warehouse_file):  # the flow's writer publishes it again
            return None
    except Exception:  # noqa: BLE001 - the flow will meet the same problem and say what it is
        return None
    return RunSummary("noop", str(landing_dir), str(warehouse_file), dt.datetime.now(dt.UTC), None).render()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _operator_server_set() -> bool:
    """Whether PREFECT_API_URL is set in the environment or in the active Prefect profile (where
    `prefect config set` puts it), read without importing Prefect (1.2 s of CPU). When in doubt, False:
    the server's process then reads every Prefect setting and exits if it is not wanted."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    try:
        profiles = tomllib.loads(Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
                                 .expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    by_name = profiles.get("profiles")
    profile = by_name.get(os.environ.get("PREFECT_PROFILE") or profiles.get("active")) if isinstance(by_name, dict) else None
    return isinstance(profile, dict) and bool(profile.get("PREFECT_API_URL"))


def _start_temporary_server(group: int, verbose: bool) -> tuple[subprocess.Popen | None, dict[str, str]]:
    """The run's temporary Prefect server, started now in GROUP (flows/temporary_server.py), and what the
    run's environment needs to use it; (None, {}) for a run with the operator's server, or if it could
    not be started (then Prefect starts one in the run, as it would without us).

    PREFECT_API_URL in the environment or the active Prefect profile is checked here
    (`_operator_server_set`). Set elsewhere (prefect.toml, .env), the server's process reads Prefect's
    settings, finds it and exits (about 1 s of the other core, while the run imports), and the run,
    deciding alike, uses the operator's server."""
    if _operator_server_set():
        return None, {}
    from flows import temporary_server

    output = None if verbose else subprocess.DEVNULL  # its errors are Prefect's, not the run's one line
    try:
        server, api_url = temporary_server.start(process_group=group, stdout=output, stderr=output)
    except OSError:  # e.g. no file descriptor or process left
        return None, {}
    return server, {temporary_server.RUN_SERVER_ENV: api_url}


def run_supervised(argv: list[str]) -> int:
    """Run `python -m flows.cli <argv>` in a process group of its own that is gone when this returns,
    or when this process dies. Returns the run's exit code (128 + N if signal N ended it)."""
    read_end, write_end = os.pipe()  # not inheritable: only the watchdog gets a copy (as its stdin)
    try:
        watchdog = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG], stdin=read_end,
                                    process_group=0)
    finally:
        os.close(read_end)
    group = watchdog.pid
    server, run_env = _start_temporary_server(group, verbose="-v" in argv)
    first_interrupt = None
    run = None

    def pass_on(number, _frame):
        nonlocal first_interrupt
        if run is None:
            return
        if number == signal.SIGINT:
            now = time.monotonic()
            if first_interrupt is not None:
                # Asked again: stop now. Not within a second, though: that is the same Ctrl-C passed
                # on by a wrapper as well (`uv run` does so when it has no terminal).
                if now - first_interrupt >= DOUBLE_INTERRUPT_S:
                    os.killpg(group, signal.SIGKILL)
                return
            first_interrupt = now
        try:
            os.kill(run.pid, signal.SIGINT if number == signal.SIGINT else signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = {number: signal.signal(number, pass_on) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
                if signal.getsignal(number) is not signal.SIG_IGN}  # e.g. nohup: the run ignores it too
    try:
        run = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv],
                               env={**os.environ, **run_env, SUPERVISED_ENV: "1"}, process_group=group)
        # Wait for the run to end but leave it unreaped: while it is a zombie, neither its pid nor the
        # group's id can be given to another process, so the killpg below reaches only our group.
        os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOWAIT)
    finally:
        if server is not None:  # stopped as Prefect stops its own: SIGTERM, 5 s to finish writing
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(group, signal.SIGKILL)  # whatever the run left: a Prefect server, the watchdog
        except ProcessLookupError:
            pass
        os.close(write_end)
        for number, handler in previous.items():
            signal.signal(number, handler)
        if run is not None:
            run.wait()
        if server is not None:
            server.wait()
        watchdog.wait()
    code = run.returncode
    if code < 0:
        name = _signal_name(-code)
        if -code != signal.SIGINT:
            print(f"boligdata: run stopped by {name}; the warehouse is as the last completed run left it",
                  file=sys.stderr)
        return 128 - code
    return code
