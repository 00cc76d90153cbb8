"""`pull`: fetch a model's manifest and blobs from its registry into the store (PULL-02..07).

The manifest is written, byte for byte as the registry sent it, only after every blob it names
is in the store and verified; so an interrupted or failed pull never leaves a model that points
at missing or bad bytes.

Hugging Face needs nothing of its own, as in Ollama: `hf.co/<user>/<repo>[:<quant>]` is an
ordinary name (namespace = user, model = repository, tag = quantization; `latest` is the
repository's default), and hf.co serves the same distribution API there, with manifests it
makes for Ollama (the GGUF, a template, params) and blobs that redirect to its CDN. Private
repositories answer the bearer challenge signed with `~/.ollama/id_ed25519`, whose public half
users add to their Hugging Face SSH keys. The Hugging Face client library would fetch the GGUF
file alone, without the template and parameters hf.co makes for Ollama.
"""

from __future__ import annotations

import asyncio
import logging

from pollama.config import Config
from pollama.errors import InvalidModelName
from pollama.names import Name
from pollama.registry.client import MEDIA_MANIFEST, RegistryClient, translate_errors
from pollama.registry.download import SMALL_BLOB, download_blob
from pollama.registry.errors import (
    InsecureProtocol,
    ManifestNotFound,
    RegistryError,
    RemoteNotFound,
)
from pollama.registry.progress import Progress, status, transfer
from pollama.store import CorruptManifest, Manifest, Store
from pollama.store.blobs import parse_digest
from pollama.store.manifest import MEDIA_TENSOR, Layer

log = logging.getLogger("pollama.registry")


async def fetch_manifest(client: RegistryClient, tag: str) -> tuple[Manifest, bytes]:
    """GET the manifest (REG-01); errors carry Ollama's `pull model manifest: ` prefix."""
    try:
        with translate_errors():
            resp = await client.request("GET", client.url("manifests", tag),
                                        headers={"Accept": MEDIA_MANIFEST})
    except RegistryError as err:
        if isinstance(err, RemoteNotFound):
            raise ManifestNotFound() from err
        raise err.prefixed("pull model manifest") from err
    raw = resp.content
    try:
        manifest = Manifest.decode(raw)
    except CorruptManifest as err:
        raise RegistryError(f"pull model manifest: {err}") from err
    for layer in manifest.all_layers():
        if parse_digest(layer.digest) != layer.digest:
            raise RegistryError(f"pull model manifest: invalid digest {layer.digest!r}")
    return manifest, raw


async def _download_all(store: Store, client: RegistryClient, layers: list[Layer],
                        progress: Progress) -> None:
    """Every blob of the manifest, reported in its order as Ollama does; the small ones (config,
    template, params, license) are fetched from the start, side by side with the big one, so
    that their round trips do not add up after it."""
    small = {layer.digest: asyncio.ensure_future(
        download_blob(store, client, layer.digest, layer.size, progress=_ignore))
        for layer in layers if layer.size <= SMALL_BLOB}
    try:
        for layer in layers:
            fetching = small.get(layer.digest)
            if fetching is None:
                await download_blob(store, client, layer.digest, layer.size, progress=progress)
            else:
                await fetching
                size = store.blobs.size(layer.digest)
                progress(transfer("pulling", layer.digest, size, size))
    finally:
        for fetching in small.values():
            fetching.cancel()
        await asyncio.gather(*small.values(), return_exceptions=True)


def _ignore(_: dict[str, object]) -> None:
    pass


async def pull_model(store: Store, name: Name, *, insecure: bool = False,
                     progress: Progress) -> None:
    """Pull `name` into `store`, reporting Ollama's progress objects to `progress`."""
    if not name.is_valid:
        raise InvalidModelName()
    name = store.manifests.resolve(name)
    unused: set[str] = set()
    try:
        old = store.manifests.read(name)
    except CorruptManifest as err:
        log.warning("pulling model with bad existing manifest %s: %s", name, err)
        old = None
    if old is not None:
        unused = old.manifest.digests()
    if name.scheme == "http" and not insecure:
        raise InsecureProtocol()

    progress(status("pulling manifest"))
    with translate_errors():
        async with RegistryClient(name, insecure=insecure) as client:
            manifest, raw = await fetch_manifest(client, name.tag)
            if manifest.find(MEDIA_TENSOR):
                raise RegistryError("this model requires MLX support, but the MLX runtime is "
                                    "not available")
            layers = manifest.all_layers() if manifest.config.digest else list(manifest.layers)
            await _download_all(store, client, layers, progress)

    # Every blob was hashed and compared before it got its name (download.py).
    progress(status("verifying sha256 digest"))
    for layer in layers:
        if not store.blobs.exists(layer.digest):
            raise RegistryError(f"blob {layer.digest} went missing during the pull")

    progress(status("writing manifest"))
    store.manifests.write(name, raw)

    unused -= {layer.digest for layer in layers}
    if unused and not Config.from_env().noprune:
        progress(status("removing unused layers"))
        store.remove_unreferenced(unused)
    progress(status("success"))
