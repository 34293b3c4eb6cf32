"""The external world's managed block in CoreDNS's Corefile: render it, put it in, take it out, read it back."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping

from conformance.core.manifests import manifest_path, render_text

DNS_BLOCK_TEMPLATE = "coredns/external-world.corefile"
DNS_BLOCK_BEGIN = "# BEGIN egress-conformance external-world (managed block: removed when the run ends)"
DNS_BLOCK_END = "# END egress-conformance external-world"


class CorefileError(ValueError):
    pass


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$)({_LABEL}\.)*{_LABEL}$")
_SCHEME = re.compile(r"^[a-z0-9+]+://", re.IGNORECASE)


def render_dns_block(addresses: Mapping[str, str]) -> str:
    """The marked Corefile server block answering each public name with its address."""
    if not addresses:
        raise CorefileError("no public names to map")
    for host, address in addresses.items():
        if not _HOST_NAME.match(host):
            raise CorefileError(f"not a DNS name: {host!r}")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise CorefileError(f"not an IP address for {host}: {address!r}") from None
    template = manifest_path(DNS_BLOCK_TEMPLATE).read_text(encoding="utf-8")
    body = render_text(
        template,
        {
            "ZONES": " ".join(f"{host}:53" for host in addresses),
            "HOST_ENTRIES": "\n".join(f"        {address} {host}" for host, address in addresses.items()),
        },
        source=DNS_BLOCK_TEMPLATE,
    )
    return f"{DNS_BLOCK_BEGIN}\n{body.strip(chr(10))}\n{DNS_BLOCK_END}\n"


def without_dns_block(corefile: str) -> str:
    """``corefile`` with the managed block (and the newline put before it) removed; unchanged if absent."""
    begin = f"\n{DNS_BLOCK_BEGIN}\n"
    end = f"\n{DNS_BLOCK_END}\n"
    start = corefile.find(begin)
    if start < 0:
        return corefile
    stop = corefile.find(end, start)
    if stop < 0:
        raise CorefileError("the Corefile holds the external-world begin marker without its end marker")
    return corefile[:start] + corefile[stop + len(end) :]


def with_dns_block(corefile: str, block: str) -> str:
    """Append ``block`` (replacing an earlier copy): ``without_dns_block`` of the result is the input."""
    base = without_dns_block(corefile)
    taken = set(server_block_zones(base)) & set(dns_block_zones(block))
    if taken:
        raise CorefileError(
            f"the Corefile already has a server block for {', '.join(sorted(taken))}; "
            "the external world cannot take these names over"
        )
    # The separating newline is part of what without_dns_block removes, so the round trip is exact
    # whether or not the original ends with a newline.
    return f"{base}\n{block}"


def _corefile_tokens(corefile: str) -> Iterator[str]:
    for line in corefile.splitlines():
        code = line.split("#", 1)[0]
        yield from code.replace("{", " { ").replace("}", " } ").split()


def server_block_keys(corefile: str) -> list[list[str]]:
    """The keys (``zone:port`` etc.) of each top-level server block, snippets excluded."""
    blocks: list[list[str]] = []
    pending: list[str] = []
    depth = 0
    for token in _corefile_tokens(corefile):
        if token == "{":
            if depth == 0 and pending and not pending[0].startswith("("):
                blocks.append(pending)
            if depth == 0:
                pending = []
            depth += 1
        elif token == "}":
            depth = max(depth - 1, 0)
        elif depth == 0:
            pending.append(token)
    return blocks


def _zone_of(key: str) -> str | None:
    """The DNS zone a server block key serves on port 53 (None for other ports or transports)."""
    for part in key.split(","):
        part = part.strip()
        if not part:
            continue
        scheme_match = _SCHEME.match(part)
        if scheme_match and scheme_match.group(0).lower() != "dns://":
            return None
        rest = part[scheme_match.end() :] if scheme_match else part
        host, _, port = rest.partition(":")
        if port and port != "53":
            return None
        return host.lower().rstrip(".") or "."
    return None


def server_block_zones(corefile: str) -> list[str]:
    """Zones served on port 53 by the Corefile's server blocks."""
    return [zone for keys in server_block_keys(corefile) for key in keys if (zone := _zone_of(key))]


def dns_block_zones(block: str) -> list[str]:
    return server_block_zones(block)


def dns_block_addresses(corefile: str) -> dict[str, str]:
    """Public name -> address from the managed block of ``corefile`` ({} when there is none)."""
    start = corefile.find(f"{DNS_BLOCK_BEGIN}\n")
    if start < 0:
        return {}
    stop = corefile.find(DNS_BLOCK_END, start)
    addresses: dict[str, str] = {}
    for line in corefile[start:stop].splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            try:
                ipaddress.ip_address(fields[0])
            except ValueError:
                continue
            for name in fields[1:]:
                addresses[name] = fields[0]
    return addresses


def corefile_reloads_itself(corefile: str) -> bool:
    """True when some server block enables the ``reload`` plugin (it watches the whole Corefile)."""
    return any(line.split("#", 1)[0].split()[:1] == ["reload"] for line in corefile.splitlines())
