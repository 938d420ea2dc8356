"""A throw-away certificate authority for the rig's TLS listeners (openssl CLI).

`make_pki(dir)` writes a CA, a server certificate for 127.0.0.1/localhost and a client
certificate, all signed by that CA, plus a second CA that signed nothing (to show that a
client trusting the wrong CA is refused).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # trusted by nobody: a client using it must fail the handshake


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _ca(dir: Path, name: str) -> tuple[Path, Path]:
    key, cert = dir / f"{name}.key", dir / f"{name}.crt"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "3650",
        "-subj",
        f"/CN=rig-{name}",
    )
    return cert, key


def _signed(dir: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert = dir / f"{name}.key", dir / f"{name}.csr", dir / f"{name}.crt"
    extfile = dir / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        f"/CN=rig-{name}",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca[0],
        "-CAkey",
        ca[1],
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "3650",
        "-extfile",
        extfile,
    )
    return cert, key


def make_pki(dir: Path) -> Pki:
    dir.mkdir(parents=True, exist_ok=True)
    ca = _ca(dir, "ca")
    server = _signed(
        dir, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
    )
    client = _signed(dir, "client", ca, "extendedKeyUsage=clientAuth")
    other, _ = _ca(dir, "other-ca")
    for key in dir.glob("*.key"):
        key.chmod(0o644)  # Mosquitto may drop to its own user: it must still read them
    return Pki(ca[0], server[0], server[1], client[0], client[1], other)
