"""The registry client: pull and push models over the OCI distribution protocol, as Ollama does,
and export/import one model as an OCI image-layout tar for machines without a registry.

    pull_model(store, name, *, insecure=False, progress)      pull.py (+ download.py)
    push_model(store, name, *, insecure=False, progress)      push.py
    export_model(store, name, out)                            archive.py
    import_archive(store, src, *, name=None, progress) -> Name   archive.py

`progress` receives Ollama's progress objects (`{"status": ...}`, with `digest`, `total`,
`completed` during transfers) exactly as `/api/pull` and `/api/push` stream them. Errors are
the classes in errors.py; credentials and the identity key are described in auth.py.
"""

from pollama.registry.archive import export_model, import_archive
from pollama.registry.auth import ensure_keypair, public_key
from pollama.registry.errors import (
    ArchiveError,
    BlobDigestMismatch,
    InsecureProtocol,
    LocalManifestMissing,
    ManifestNotFound,
    MaxRetriesExceeded,
    RegistryError,
    RemoteNotFound,
    Unauthorized,
)
from pollama.registry.pull import pull_model
from pollama.registry.push import push_model

__all__ = [
    "ArchiveError",
    "BlobDigestMismatch",
    "InsecureProtocol",
    "LocalManifestMissing",
    "ManifestNotFound",
    "MaxRetriesExceeded",
    "RegistryError",
    "RemoteNotFound",
    "Unauthorized",
    "ensure_keypair",
    "export_model",
    "import_archive",
    "public_key",
    "pull_model",
    "push_model",
]
