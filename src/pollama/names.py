"""Model names: `[scheme://][host/][namespace/]model[:tag][@digest]`.

Grammar (Ollama's `types/model/name.go`):
- the tag is split at the last `:` only when it comes after the last `/`;
- missing parts default to host `registry.ollama.ai`, namespace `library`, tag `latest`;
- every part starts with `[A-Za-z0-9_]`; then host allows `[A-Za-z0-9_.:-]` (1–350 chars),
  namespace `[A-Za-z0-9_-]` (1–80), model and tag `[A-Za-z0-9_.-]` (1–80);
- a separator followed by nothing (`ns/`, `m:`) makes the name invalid.

`parse` never raises; `Name.is_valid` decides. Names compare case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_MODEL_OR_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")


@dataclass(frozen=True)
class Name:
    """A parsed model name; empty strings mark parts a separator promised but did not give."""

    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = DEFAULT_SCHEME
    digest: str = ""
    explicit_scheme: bool = False

    @property
    def is_valid(self) -> bool:
        return bool(
            _HOST.fullmatch(self.host)
            and _NAMESPACE.fullmatch(self.namespace)
            and _MODEL_OR_TAG.fullmatch(self.model)
            and _MODEL_OR_TAG.fullmatch(self.tag)
        )

    def display_shortest(self) -> str:
        """`model:tag`, `ns/model:tag` or `host/ns/model:tag`, as `ollama list` shows them."""
        if self.host.lower() == DEFAULT_HOST:
            if self.namespace.lower() == DEFAULT_NAMESPACE:
                return f"{self.model}:{self.tag}"
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def display_long(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    def manifest_relpath(self) -> PurePosixPath:
        """Path of this name's manifest under `<models>/manifests/`; the name must be valid."""
        if not self.is_valid:
            raise ValueError(f"invalid model name {self.display_long()!r}")
        return PurePosixPath(self.host, self.namespace, self.model, self.tag)

    def equal_fold(self, other: Name) -> bool:
        return tuple(p.lower() for p in self.parts()) == tuple(p.lower() for p in other.parts())

    def with_parts(self, host: str, namespace: str, model: str, tag: str) -> Name:
        return Name(host, namespace, model, tag, self.scheme, self.digest, self.explicit_scheme)

    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def repository(self) -> str:
        """`namespace/model`, the repository path on an OCI registry."""
        return f"{self.namespace}/{self.model}"

    def __str__(self) -> str:
        return self.display_shortest()


def parse(text: str) -> Name:
    """Parse a model name, filling defaults; never raises (see `Name.is_valid`)."""
    s = text
    scheme, explicit = DEFAULT_SCHEME, False
    if "://" in s:
        scheme, s = s.split("://", 1)
        explicit = True
    digest = ""
    if "@" in s:
        s, digest = s.split("@", 1)
    tag = DEFAULT_TAG
    colon, slash = s.rfind(":"), s.rfind("/")
    if colon > slash:
        s, tag = s[:colon], s[colon + 1 :]
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if "/" in s:
        rest, model = s.rsplit("/", 1)
        if "/" in rest:
            host, namespace = rest.rsplit("/", 1)
        else:
            namespace = rest
    else:
        model = s
    return Name(host, namespace, model, tag, scheme, digest, explicit)


def parse_valid(text: str) -> Name | None:
    """Parse and return the name only if it is valid."""
    name = parse(text)
    return name if name.is_valid else None
