"""Errors of the registry client, with the texts Ollama gives for the same failures.

    PollamaError
    ├── RegistryError            the registry or the network failed (`<code>: <body>`, ...)
    │   ├── RemoteNotFound       the registry answered 404 ("file does not exist")
    │   │   └── ManifestNotFound "pull model manifest: file does not exist"
    │   ├── Unauthorized         "unauthorized: access denied"
    │   ├── MaxRetriesExceeded   "max retries exceeded: <last error>"
    │   ├── BlobDigestMismatch   "digest mismatch, file must be downloaded again: want .., got .."
    │   └── BlobSizeMismatch     the registry's blob is not the size its manifest says
    ├── InsecureProtocol         "insecure protocol http" (an http:// name without insecure)
    ├── LocalManifestMissing     push of a model that is not in the store
    └── BadRequest
        └── ArchiveError         an export archive that is unreadable, incomplete or corrupt

Ollama streams all of these as `{"error": ...}` after the first progress line, so they keep the
base status 500 (Ollama's streamResponse default), except ArchiveError (400, bad input);
the store's StorageError covers a full disk.
"""

from __future__ import annotations

from pollama.errors import BadRequest, PollamaError


class RegistryError(PollamaError):
    """The registry answered with an error status (`code`), or could not be reached."""

    code: int | None = None

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def transient(self) -> bool:
        """Worth retrying: the registry answered 5xx or 429."""
        return self.code is not None and (self.code >= 500 or self.code == 429)

    def prefixed(self, prefix: str) -> RegistryError:
        """The same kind of error with `prefix: ` in front of its text (Ollama's wrapping)."""
        err = type(self).__new__(type(self))
        RegistryError.__init__(err, f"{prefix}: {self.message}", self.code)
        return err


class RemoteNotFound(RegistryError):
    """The registry answered 404 (Go's os.ErrNotExist text)."""

    def __init__(self, message: str = "file does not exist") -> None:
        super().__init__(message, 404)


class ManifestNotFound(RemoteNotFound):
    """No manifest for this name on the registry (PULL-04)."""

    def __init__(self, message: str = "pull model manifest: file does not exist") -> None:
        super().__init__(message)


class Unauthorized(RegistryError):
    """Credentials were missing or refused (REG-02)."""

    def __init__(self, message: str = "unauthorized: access denied") -> None:
        super().__init__(message, 401)


class MaxRetriesExceeded(RegistryError):
    """A part transfer failed on every attempt (REG-06)."""


class BlobDigestMismatch(RegistryError):
    """Downloaded bytes hash to another digest than the manifest names (PULL-05)."""

    def __init__(self, want: str, got: str) -> None:
        super().__init__(f"digest mismatch, file must be downloaded again: want {want}, got {got}")


class BlobSizeMismatch(RegistryError):
    """The registry's Content-Range total differs from the manifest's size for a blob."""

    def __init__(self, digest: str, want: int, got: int) -> None:
        super().__init__(f"blob {digest} is {got} bytes on the registry, but its manifest "
                         f"says {want}")


class InsecureProtocol(PollamaError):
    """An `http://` model name was used without `insecure` (PULL-07)."""

    def __init__(self, message: str = "insecure protocol http") -> None:
        super().__init__(message)


class LocalManifestMissing(PollamaError):
    """Push of a name that has no manifest in the local store."""


class ArchiveError(BadRequest):
    """An export archive that cannot be imported; nothing was written to the store."""
