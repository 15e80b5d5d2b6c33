"""The client side of TLS on every link: one way to build a verifying SSL context.

MQTT (paho) and Kafka (aiokafka) clients take an ``ssl.SSLContext``; building it here keeps
the rules in one place: the CA is a file from config or else the system's CAs, the broker's
host name is always checked (there is deliberately no knob to skip it), a client
certificate is optional. A failed verification raises :class:`CertificateRejected`, whose
message names the certificate problem, the host and the CA file, so an operator who pointed
a gateway at the wrong CA reads what to fix instead of a bare ``CERTIFICATE_VERIFY_FAILED``.
"""

from __future__ import annotations

import ssl

__all__ = ["CertificateRejected", "TlsFilesError", "client_context", "describe_rejection"]

SYSTEM_CAS = "the system CA store"


class TlsFilesError(ssl.SSLError):
    """A CA, certificate or key file named in the config cannot be loaded (an SSLError, as
    the standard library raises for a bad bundle, with the files named)."""


class CertificateRejected(ssl.SSLCertVerificationError):
    """The server's certificate failed verification; the message says why and against what.

    An ``OSError`` like the error it replaces, so paho's and the gateways' reconnect loops
    treat it as a failed connection attempt (and log this message).
    """

    def __str__(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else super().__str__()


def describe_rejection(exc: ssl.SSLCertVerificationError, host: str, ca_file: str | None) -> str:
    """The operator's reading of a verification failure: problem, server and CA file."""
    problem = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
    against = f"CA file {ca_file}" if ca_file else SYSTEM_CAS
    return (
        f"TLS certificate of {host} rejected: {problem} (verified against {against});"
        " check that the CA file is the one that signed the server's certificate and that"
        " the certificate names this host"
    )


def client_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies the server and its host name.

    ``ca_file`` is the CA bundle that signed the server (``None``: the system CAs);
    ``cert_file``/``key_file`` a client certificate for mutual TLS (the key may be inside
    the certificate file). Handshakes made through the context raise
    :class:`CertificateRejected` naming the CA file.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
        elif key_file:
            raise TlsFilesError(f"TLS key file {key_file} is given without a certificate file")
    except (OSError, ssl.SSLError) as exc:
        named = ", ".join(f for f in (ca_file, cert_file, key_file) if f) or SYSTEM_CAS
        raise TlsFilesError(f"cannot load the TLS files ({named}): {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.sslsocket_class = _named_socket_class(ca_file)
    return context


def _named_socket_class(ca_file: str | None) -> type[ssl.SSLSocket]:
    """An SSLSocket whose handshake failure names the CA file it verified against."""

    class _NamingSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            try:
                super().do_handshake(block)
            except ssl.SSLCertVerificationError as exc:
                host = self.server_hostname or "the server"
                message = describe_rejection(exc, host, ca_file)
                rejected = CertificateRejected(exc.errno, message)
                rejected.verify_code = exc.verify_code
                rejected.verify_message = exc.verify_message
                raise rejected from exc

    return _NamingSocket

