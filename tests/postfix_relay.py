"""A real Postfix relay for the delivery tests, run as the test's own process.

Debian's ``postfix`` package (``apt-get install postfix``; nothing of it needs to run as
a service): its ``master`` is started in the foreground (``postfix start-fg``) with a
configuration and queue of its own in a temporary folder, listening on a free loopback
port, relaying everything to a counting aiosmtpd sink (tests/faultsmtp.py) on another.
Its ordinary per-client rate limit (``smtpd_client_message_rate_limit``, counted by
``anvil`` over ``anvil_rate_time_unit``) is switched on for loopback clients too (the
default exempts ``mynetworks``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
DAEMONS = Path("/usr/lib/postfix/sbin")


def available() -> bool:
    return Path(POSTFIX).exists() and (DAEMONS / "master").exists() and os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = {daemons}
meta_directory = /etc/postfix
shlib_directory = no
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test.example
mydomain = test.example
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{sink_port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_host_lookup = native
disable_dns_lookups = yes
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
smtpd_client_message_rate_limit = {rate}
anvil_rate_time_unit = {window}s
smtpd_client_event_limit_exceptions =
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


class PostfixRelay:
    """Use as a context manager: ``.port`` is the relay's port; it relays to
    ``sink_port``. ``rate`` messages per ``window`` seconds per client."""

    def __init__(self, sink_port: int, *, rate: int, window: int) -> None:
        # its own folder straight under the temporary directory: the postfix user must
        # reach its data folder, which pytest's private (0700) tmp_path would not allow
        self.root = Path(tempfile.mkdtemp(prefix="regiesignaal-postfix-"))
        self.sink_port = sink_port
        self.rate = rate
        self.window = window
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [POSTFIX, "-c", str(self.root / "etc"), *args],
            capture_output=True,
            timeout=60,
            check=False,
        )

    def __enter__(self) -> PostfixRelay:
        etc = self.root / "etc"
        for sub in ("etc", "queue", "data"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the postfix user reaches its data folder through it
        shutil.chown(self.root / "data", "postfix")
        (etc / "main.cf").write_text(
            MAIN_CF.format(
                root=self.root,
                daemons=DAEMONS,
                sink_port=self.sink_port,
                rate=self.rate,
                window=self.window,
            )
        )
        (etc / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        made = self._postfix("set-permissions")
        if made.returncode != 0:
            raise RuntimeError(f"postfix set-permissions: {made.stderr.decode()[-2000:]}")
        self._proc = subprocess.Popen(
            [POSTFIX, "-c", str(etc), "start-fg"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read() if self._proc.stderr else b""
                raise RuntimeError(f"postfix ended: {err.decode()[-2000:]} {self.log()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"postfix did not listen: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def flush(self) -> None:
        """Ask the queue manager to deliver what is queued now."""
        self._postfix("flush")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self._proc
        if proc is None:
            return
        self._postfix("stop")
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)
