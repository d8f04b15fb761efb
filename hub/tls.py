"""Server-side TLS for the two listeners (SPEC §7: FHIR over HTTPS; hospitals require TLS for MLLP).

One place builds the `ssl.SSLContext` from the configured PEM files, so both listeners get
the same floor: TLS 1.2 or newer, the ssl module's secure defaults, and — with a client CA —
a certificate required from every peer (mutual TLS).
"""

from __future__ import annotations

import ssl

from hub.errors import ConfigError


def server_context(section: str, cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context from PEM files. `section` names the config section ("alerts.mllp", "http")
    in the ConfigError raised when a file cannot be loaded (wrong format, key not matching)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{section}.tls_cert", f"cannot load the certificate and key: {exc}") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{section}.tls_client_ca", f"cannot load the CA: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
