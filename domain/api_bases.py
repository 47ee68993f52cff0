"""Where a model's calls may go: custom API bases checked against an allow-list, and the name
of the environment variable that holds a model's own key (pure).

A custom `apiBase` is where the workers send prompts, and with them a key. So:
- link-local and cloud-metadata addresses are always refused (they hand out credentials);
- other hosts must be on the allow-list (`MMOS_ALLOWED_API_BASES`: host names, `*.suffix`
  wildcards, IP addresses or CIDR ranges). Unset, it is loopback and private ranges in
  development, and nothing in production;
- a model with a custom base gets only its own key (`apiKeyEnv`), never a provider's default,
  and that variable may not name a provider's default key or another secret of the stack.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

DEVELOPMENT_ALLOW_LIST = ("localhost", "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                          "192.168.0.0/16", "fc00::/7", "host.docker.internal")

# Names that answer with instance credentials on the common clouds, whatever the allow-list.
METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.com", "metadata.tencentyun.com",
})
METADATA_ADDRESSES = (
    ipaddress.ip_network("169.254.0.0/16"),   # link-local: AWS, GCP, Azure, OpenStack metadata
    ipaddress.ip_network("fe80::/10"),        # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("::/128"),
)

API_KEY_ENV_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,98}(?:_KEY|_TOKEN)$")
# A custom base must never receive these: the providers' default keys and the stack's secrets.
PROTECTED_KEY_NAMES = frozenset({
    "OPENAI_API_KEY", "AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "VERTEXAI_API_KEY", "MISTRAL_API_KEY", "COHERE_API_KEY",
    "GROQ_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "DEEPSEEK_API_KEY", "XAI_API_KEY",
    "OPENROUTER_API_KEY", "FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "PERPLEXITYAI_API_KEY",
    "HUGGINGFACE_API_KEY", "HF_TOKEN", "REPLICATE_API_KEY", "REPLICATE_API_TOKEN",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CEREBRAS_API_KEY", "NVIDIA_NIM_API_KEY",
    "DATABRICKS_TOKEN", "GITHUB_TOKEN", "CLOUDFLARE_API_KEY", "VOYAGE_API_KEY",
})


def allow_list(configured: str | None, *, production: bool) -> tuple[str, ...]:
    """The entries custom bases are checked against: the configured ones (comma separated;
    an empty value allows none), else the default of the environment."""
    if configured is None:
        return () if production else DEVELOPMENT_ALLOW_LIST
    return tuple(entry.strip().lower() for entry in configured.split(",") if entry.strip())


def bad_allow_entries(entries: Iterable[str]) -> list[str]:
    """Entries that are neither a host name, a `*.suffix`, an address nor a CIDR range."""
    bad = []
    for entry in entries:
        name = entry.removeprefix("*.")
        try:
            ipaddress.ip_network(name, strict=False)
            continue
        except ValueError:
            pass
        if not _HOST_NAME.match(name):
            bad.append(entry)
    return bad


_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                        r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")


def host_of(url: str) -> str | None:
    """The host of an http(s) URL, lower case, without brackets; None when it has none."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def problem_with_base(url: str, allowed: Sequence[str]) -> str | None:
    """Why `url` may not be a model's API base, or None when it may."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    del port
    if parts.scheme not in ("http", "https"):
        return "must be an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (give the key through apiKeyEnv)"
    host = host_of(url)
    if not host:
        return "must name a host"
    address = _address(host)
    if is_metadata(host, address):
        return "points at a link-local or cloud metadata address, which is always refused"
    if not allowed:
        return ("is not allowed: custom API bases are off here (set MMOS_ALLOWED_API_BASES to "
                "the hosts or CIDR ranges models may call)")
    if not is_allowed(host, address, allowed):
        return (f"is not allowed: {host} is not in MMOS_ALLOWED_API_BASES "
                f"({', '.join(allowed)})")
    return None


def is_metadata(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    """A host name or address that serves cloud instance credentials (or link-local)."""
    if host in METADATA_HOSTS:
        return True
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in METADATA_ADDRESSES
               if network.version == address.version)


def is_allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
               allowed: Sequence[str]) -> bool:
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if host == entry:
                return True
            continue
        if address is not None and address.version == network.version and address in network:
            return True
    return False


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def problem_with_key_env(name: str) -> str | None:
    """Why `name` may not name a model's own key variable, or None when it may."""
    if not API_KEY_ENV_RE.match(name):
        return ("must be an environment variable name in capitals ending in _KEY or _TOKEN, "
                "e.g. LOCAL_LLAMA_API_KEY")
    if name in PROTECTED_KEY_NAMES or name.startswith("MMOS_"):
        return (f"{name} is a provider's default key or a setting of MMOS: give the model a "
                "variable of its own")
    return None
