"""ZeroMQ CURVE for exposed endpoints: keys, an allow-list, server and client sockets.

Layout of a key folder (``castream keys DIR`` makes it; ZeroMQ's certificate files, read
with :func:`zmq.auth.load_certificate`)::

    DIR/server.key          the engine's public key   (copy to every publisher machine)
    DIR/server.key_secret   the engine's secret key   (stays on the engine machine)
    DIR/NAME.key            a client's public key     (``castream keys DIR --client NAME``)
    DIR/NAME.key_secret     a client's secret key     (copy to that publisher / dashboard)
    DIR/allowed/NAME.key    the allow-list: public keys of the clients the engine accepts

The engine (``serve`` / ``ingest`` ``--curve-dir DIR``) makes its ingest ROUTER and event PUB
CURVE servers with ``server.key_secret`` and accepts only clients whose public key is in
``DIR/allowed/`` (a ZAP authenticator on its ZeroMQ context). A client (``replay`` /
``simulate --stream-to`` / the SDK / ``dashboard`` ``--curve-dir DIR --curve-name NAME``)
needs ``server.key`` and its own ``NAME.key_secret``. Traffic is encrypted and authenticated;
a client not on the allow-list (or without keys) cannot connect, and its data never arrive.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)

SERVER_NAME = "server"
ALLOWED_DIR = "allowed"
_AUTHENTICATORS: dict[int, ThreadAuthenticator] = {}  # one per context
_LOCK = threading.Lock()


class CurveError(ValueError):
    """Missing or unreadable keys (the message names the file and the command that makes it)."""


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveError(f"CURVE key {path} not found: make it with `castream keys "
                         f"{path.parent}` (see `castream keys --help`)")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveError(f"CURVE key {path} is unreadable: {exc}") from None
    if secret and secret_key is None:
        raise CurveError(f"{path} holds no secret key")
    return public, secret_key


def make_keys(folder: str | Path, client: str | None = None) -> list[Path]:
    """Create the engine's keypair (first call) and, with ``client``, a client keypair whose
    public key is put on the allow-list. Existing keys are kept. Returns the files written."""
    folder = Path(folder)
    (folder / ALLOWED_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for name in (SERVER_NAME, client):
        if name is None or (folder / f"{name}.key_secret").exists():
            continue
        if not name.replace("-", "").replace("_", "").isalnum() or name == ALLOWED_DIR:
            raise CurveError(f"key name {name!r}: use letters, digits, '-' and '_'")
        public, secret = zmq.auth.create_certificates(str(folder), name)
        written += [Path(public), Path(secret)]
        if name != SERVER_NAME:
            shutil.copy(public, folder / ALLOWED_DIR / f"{name}.key")
            written.append(folder / ALLOWED_DIR / f"{name}.key")
    return written


def allow_curve_clients(socket: zmq.Socket, folder: str | Path) -> None:
    """Admit to ``socket`` only the CURVE clients whose public keys are in ``folder/allowed``
    (re-read at every call): a ZAP authenticator per context, one ZAP domain per folder."""
    allowed = (Path(folder) / ALLOWED_DIR).resolve()
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise CurveError(f"no allowed client keys in {allowed}: add one with `castream keys "
                         f"{folder} --client NAME`")
    with _LOCK:
        auth = _AUTHENTICATORS.get(id(socket.context))
        if auth is None:
            auth = ThreadAuthenticator(socket.context, log=logging.getLogger("castream.curve"))
            auth.start()
            _AUTHENTICATORS[id(socket.context)] = auth
        auth.configure_curve(domain=str(allowed), location=str(allowed))
    socket.zap_domain = str(allowed).encode()
    log.info("CURVE: clients allowed from %s (%d keys)", allowed,
             len(list(allowed.glob("*.key"))))


def make_curve_server(socket: zmq.Socket, folder: str | Path) -> None:
    """Make ``socket`` (before it binds) a CURVE server with the engine's keys and the
    folder's allow-list."""
    folder = Path(folder)
    public, secret = _load(folder / f"{SERVER_NAME}.key_secret", secret=True)
    allow_curve_clients(socket, folder)
    socket.curve_server = True
    socket.curve_publickey = public
    socket.curve_secretkey = secret


@dataclass(frozen=True)
class CurveClient:
    """A client's view of CURVE: the engine's public key and the client's own keypair."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_folder(cls, folder: str | Path, name: str) -> CurveClient:
        """``folder/server.key`` and ``folder/NAME.key_secret``."""
        folder = Path(folder)
        server_public, _ = _load(folder / f"{SERVER_NAME}.key", secret=False)
        public, secret = _load(folder / f"{name}.key_secret", secret=True)
        return cls(server_public, public, secret)

    def apply(self, socket: zmq.Socket) -> None:
        """Set the socket's CURVE client options (before it connects)."""
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
