"""TLS: a throwaway private CA and the certificates it issues."""

from __future__ import annotations

import datetime as dt
import itertools
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for one server certificate issued by a ``PrivateCA``."""

    cert_pem: Path  # leaf then chain
    key_pem: Path
    ca_pem: Path  # what a client should trust


class PrivateCA:
    """A throwaway CA (trustme) writing its PEM files under a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.ca_pem = self._dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        self._serial = itertools.count(1)

    def issue(self, *names: str, expired: bool = False) -> TlsFiles:
        """Write a leaf cert for ``names`` (already expired if asked) and return its files."""
        if not names:
            raise ValueError("give at least one DNS name or IP address")
        validity: dict[str, dt.datetime] = {}
        if expired:
            now = dt.datetime.now(dt.UTC)
            validity = {
                "not_before": now - dt.timedelta(days=30),
                "not_after": now - dt.timedelta(days=1),
            }
        leaf = self.ca.issue_cert(*names, **validity)  # type: ignore[arg-type]
        n = next(self._serial)
        files = TlsFiles(self._dir / f"leaf{n}.pem", self._dir / f"leaf{n}.key", self.ca_pem)
        files.cert_pem.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        files.key_pem.write_bytes(leaf.private_key_pem.bytes())
        return files

    def server_context(self, *names: str, expired: bool = False) -> ssl.SSLContext:
        """Server-side context presenting a leaf cert for ``names``."""
        files = self.issue(*names, expired=expired)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(files.cert_pem, files.key_pem)
        # Pin HTTP/1.1 so an h2-capable client does not try to speak HTTP/2 to us.
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Client-side context trusting only this CA."""
        return ssl.create_default_context(cafile=str(self.ca_pem))


def private_ca(tmp_path: Path) -> PrivateCA:
    """A fresh private CA whose files live under ``tmp_path``."""
    return PrivateCA(tmp_path / "private-ca")
