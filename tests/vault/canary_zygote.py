"""A fork server for the canary proof: imports the chargeguard CLI once, then forks one process per command.

Every command of the canary proof still runs as its own process through the real CLI entry point
(``chargeguard.cli.app``), with its own environment and its stdout/stderr written to files; only the import
of the CLI (about 5 CPU-seconds on the shared development machine, for every start) is shared. With
``CANARY_IDENTITY=1`` in a command's environment (set only by the canary test) the child switches
pseudonymisation to identity before running, which is how the test proves the search can fail.

Protocol: one JSON object per line on the server's stdin (``args``, ``env``, ``stdout``, ``stderr``, ``rc``);
the server answers with the child's pid. The child writes its exit code and its CPU seconds to ``rc`` when it
ends by itself (or after a graceful shutdown on SIGTERM); a child killed by a signal writes none. Children are
reaped by the kernel (SIGCHLD ignored), so their CPU time is not in the test process's ``rusage``: ``cpu_s``
sums what they report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

SERVER = r"""
import json, os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
from chargeguard.cli import app
if not any(c.name == "gateway" for c in app.registered_commands):
    from chargeguard.cli import gateway
    gateway.register(app)

def child(req):
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(req["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        if os.environ.get("CANARY_IDENTITY") == "1":
            from chargeguard.vault import pseudonyms
            pseudonyms.Pseudonymiser.pseudonymise = pseudonyms.Pseudonymiser.__call__ = lambda self, raw: raw
        try:
            app(req["args"], prog_name="chargeguard")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            times = os.times()
            with open(req["rc"], "w") as handle:
                handle.write(f"{code} {times.user + times.system:.3f}")
        finally:
            os._exit(code)

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(request)
    sys.stdout.write(f"{pid}\n")
    sys.stdout.flush()
"""


class Zygote:
    """The fork server of one product run; ``spawn`` starts a command, ``wait``/``stop`` end it."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._lock = threading.Lock()
        self.cpu_s = 0.0  # CPU seconds of the commands that reported it (the server's own start not included)

    def spawn(self, args: list[str], env: dict[str, str], out: Path, n: int) -> tuple[int, Path]:
        """Start ``chargeguard ARGS`` as process ``n`` (output in out/procNN.*); returns (pid, rc file)."""
        rc = out / f"proc{n:02d}.rc"
        request = {
            "args": args,
            "env": env,
            "stdout": str(out / f"proc{n:02d}.stdout"),
            "stderr": str(out / f"proc{n:02d}.stderr"),
            "rc": str(rc),
        }
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(orjson.dumps(request) + b"\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
        assert answer.strip().isdigit(), f"the fork server did not start {args[0]}"
        return int(answer), rc

    @staticmethod
    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait(self, pid: int, rc: Path, timeout_s: float = 300) -> int | None:
        """The exit code (None when the process was stopped by a signal); fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if rc.exists() and rc.read_text():
                while self.alive(pid) and time.monotonic() < deadline:  # rc is written just before exit
                    time.sleep(0.01)
                return self._code(rc)
            if not self.alive(pid):
                return self._code(rc) if rc.exists() and rc.read_text() else None
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"process {pid} did not end within {timeout_s} s")

    def _code(self, rc: Path) -> int:
        code, cpu = rc.read_text().split()
        with self._lock:
            self.cpu_s += float(cpu)
        return int(code)

    def stop(self, pid: int, rc: Path) -> int | None:
        """SIGTERM, then the exit code (0 after a graceful shutdown, None when the signal ended it)."""
        if self.alive(pid):
            os.kill(pid, signal.SIGTERM)
        return self.wait(pid, rc, timeout_s=60)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
