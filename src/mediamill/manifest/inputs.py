"""Where a manifest may read from.

A manifest is often written by someone other than the person who runs it (a
client's spreadsheet, a manifest dropped in a shared inbox), so the files and
URLs it names are untrusted:

- a file must lie, after resolving ``..`` and symlinks, under the manifest's
  own folder tree, a voice registry, or an asset root from
  ``MEDIAMILL_ASSET_ROOTS`` (folders separated like ``PATH``);
- a URL must be http(s) and must not name a loopback, private, link-local or
  otherwise internal address, since hosted engines fetch it from inside their
  network; ``MEDIAMILL_ALLOW_PRIVATE_URLS=true`` lifts that for in-house hosts.

Host names are not resolved here: a manifest is judged the same on any
machine, with or without DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlsplit

from ..config import settings
from ..voices import voice_dirs

_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa", ".corp")


def asset_roots(base_dir: Path) -> list[Path]:
    """Folders a manifest in ``base_dir`` may read files from."""
    return [base_dir, *voice_dirs(), *settings().asset_roots]


def outside_roots(path: Path, base_dir: Path) -> str | None:
    """Why ``path`` may not be read, or None when it lies under an allowed folder."""
    if "\x00" in str(path):
        return "contains a NUL character"
    try:
        real = path.expanduser().resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unknown ~user
        return "cannot be resolved (a symlink loop or an unknown ~user?)"
    for root in asset_roots(base_dir):
        try:
            if real.is_relative_to(root.expanduser().resolve()):
                return None
        except OSError:
            continue
    return "is outside the manifest's folder and the asset roots (MEDIAMILL_ASSET_ROOTS)"


def _ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in any form a URL library would accept ("127.1", "0x7f000001")."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def private_url_problem(url: str) -> str | None:
    """Why a URL must not be handed to an engine, or None."""
    if settings().allow_private_urls:
        return None
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    ip = _ip_of(host)
    if ip is not None:
        mapped = getattr(ip, "ipv4_mapped", None)
        ip = mapped or ip
        if not ip.is_global or ip.is_multicast:
            return "points at a loopback, private or reserved address (MEDIAMILL_ALLOW_PRIVATE_URLS=true allows it)"
        return None
    if host == "localhost" or "." not in host or host.endswith(_INTERNAL_SUFFIXES):
        return "points at an internal host name (MEDIAMILL_ALLOW_PRIVATE_URLS=true allows it)"
    return None


def resolve_input(value: str, base_dir: Path) -> Path:
    """A path written in a manifest is relative to the manifest's folder."""
    p = Path(value)
    if value.startswith("~"):
        try:
            p = p.expanduser()
        except RuntimeError:  # an unknown ~user: left as written, so it is judged and refused
            pass
    return p if p.is_absolute() else base_dir / p
