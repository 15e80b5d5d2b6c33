"""The embedded stack's private certificate authority, for TLS on its MQTT links.

With ``services.mqtt.tls: embedded``, ``citywatch stack up`` makes a CA in
``<stack dir>/tls`` (once), a server certificate for the loopback address that Mosquitto
presents, and one client certificate per gateway whose subject CN is the gateway's broker
identity (its id), so Mosquitto can take the identity from the certificate
(``use_identity_as_username``) and apply that gateway's ACL. Keys are written mode 0600
and never leave the directory; certificates are public.

The certificates are made with the ``openssl`` command (Debian's ``openssl`` package, which
``ca-certificates`` depends on), so no Python dependency is added for this.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from citywatch.stack.errors import StackError
from citywatch.stack.ports import LOOPBACK

log = logging.getLogger(__name__)

TLS_DIR_NAME = "tls"
LISTENERS_FILE = "listeners.json"
CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity clients (and browsers) still accept for a leaf
_CURVE = "prime256v1"
_OPENSSL_TIMEOUT_S = 30


@dataclass(frozen=True)
class Listeners:
    """The TLS listeners the running embedded Mosquitto was started with.

    ``port`` takes a username and password over TLS (the bridge, the center, the launcher's
    health check); ``identity_port`` requires a client certificate signed by the stack's CA
    and takes the identity from its CN.
    """

    port: int
    identity_port: int


class EmbeddedCa:
    """The files of the stack's CA in ``tls_dir``: the CA, the server's and the clients'."""

    def __init__(self, tls_dir: Path) -> None:
        self.dir = tls_dir
        self.ca_cert = tls_dir / "ca.crt"
        self.ca_key = tls_dir / "ca.key"
        self.server_cert = tls_dir / "server.crt"
        self.server_key = tls_dir / "server.key"
        self.clients_dir = tls_dir / "clients"

    @classmethod
    def of_stack(cls, stack_dir: Path) -> EmbeddedCa:
        return cls(stack_dir / TLS_DIR_NAME)

    def exists(self) -> bool:
        """Whether the CA and the server certificate are there (the broker then runs TLS)."""
        return all(p.is_file() for p in (self.ca_cert, self.server_cert, self.server_key))

    def client_files(self, common_name: str) -> tuple[Path, Path]:
        """The certificate and key of the client ``common_name`` (they may not exist yet)."""
        return self.clients_dir / f"{common_name}.crt", self.clients_dir / f"{common_name}.key"

    def ensure(self, client_names: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Make whatever is missing: CA, server certificate, client certificates.

        Idempotent; returns what it made, for the operator's log.
        """
        made = []
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        if not (self.ca_cert.is_file() and self.ca_key.is_file()):
            self._make_ca()
            made.append(str(self.ca_cert))
        if not (self.server_cert.is_file() and self.server_key.is_file()):
            self._issue(self.server_cert, self.server_key, LOOPBACK, server=True)
            made.append(str(self.server_cert))
        for name in client_names:
            cert, key = self.client_files(name)
            if not (cert.is_file() and key.is_file()):
                self.issue_client(name)
                made.append(str(cert))
        if made:
            log.info("embedded CA in %s made %s", self.dir, made)
        return made

    def issue_client(self, common_name: str) -> tuple[Path, Path]:
        """A new client certificate with subject CN ``common_name`` (replaces an old one)."""
        if not common_name or "/" in common_name or common_name.startswith("."):
            raise StackError(f"cannot issue a client certificate for {common_name!r}")
        self.clients_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert, key = self.client_files(common_name)
        self._issue(cert, key, common_name, server=False)
        return cert, key

    def read_listeners(self) -> Listeners | None:
        """The TLS ports Mosquitto was started with, or None when it runs without TLS."""
        path = self.dir / LISTENERS_FILE
        try:
            data = json.loads(path.read_text())
            return Listeners(port=int(data["port"]), identity_port=int(data["identity_port"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise StackError(f"{path} is damaged ({exc}): restart the stack") from exc

    def write_listeners(self, listeners: Listeners | None) -> None:
        """Record (or, with None, remove) the TLS ports of the broker being started."""
        path = self.dir / LISTENERS_FILE
        if listeners is None:
            path.unlink(missing_ok=True)
            return
        path.write_text(
            json.dumps({"port": listeners.port, "identity_port": listeners.identity_port}) + "\n"
        )

    # -- openssl ------------------------------------------------------------------------------

    def _make_ca(self) -> None:
        _new_key(self.ca_key)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.ca_key), "-out", str(self.ca_cert),
            "-days", str(CA_DAYS), "-sha256", "-subj", "/O=citywatch/CN=citywatch embedded CA",
            "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def _issue(self, cert: Path, key: Path, common_name: str, *, server: bool) -> None:
        _new_key(key)
        if server:
            extensions = (
                f"subjectAltName=IP:{LOOPBACK},DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n"
            )
        else:
            extensions = "extendedKeyUsage=clientAuth\n"
        extensions += (
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        )
        with tempfile.TemporaryDirectory(prefix="citywatch-ca-") as tmp:
            csr, ext = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
            ext.write_text(extensions)
            _openssl(
                "req", "-new", "-key", str(key), "-out", str(csr),
                "-subj", f"/O=citywatch/CN={common_name}",
            )  # fmt: skip
            _openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert),
                "-CAkey", str(self.ca_key), "-set_serial", str(int.from_bytes(os.urandom(16))),
                "-days", str(LEAF_DAYS), "-sha256", "-extfile", str(ext), "-out", str(cert),
            )  # fmt: skip
        os.chmod(cert, 0o644)


def _new_key(path: Path) -> None:
    """A new EC P-256 private key at ``path``, mode 0600 from its creation."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{_CURVE}",
             "-out", str(path))  # fmt: skip
    os.chmod(path, 0o600)


def _openssl(*args: str) -> None:
    program = shutil.which("openssl")
    if program is None:
        raise StackError(
            "the `openssl` command is needed to make the embedded stack's TLS certificates:"
            " `apt-get install openssl`"
        )
    result = subprocess.run(
        [program, *args], capture_output=True, text=True, check=False, timeout=_OPENSSL_TIMEOUT_S
    )
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")
