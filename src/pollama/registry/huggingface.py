"""`pull hf.co/<user>/<repo>[:<quant>]`: nothing special is needed, on purpose.

What Ollama does (read from its source and Hugging Face's docs): Ollama has no Hugging Face code
at all. `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M` is an ordinary model name (host
`hf.co`, namespace = the user, model = the repository, tag = the quantization, `latest` = the
repository's default, usually Q4_K_M; `huggingface.co` works as the host too), and Hugging Face
serves the same OCI distribution API there that ollama.com does: `GET /v2/<user>/<repo>/
manifests/<quant>` returns an Ollama manifest (model, template, params layers), blobs redirect to
its CDN. Private repositories use the Bearer challenge answered with the ed25519 key signature
(users add `~/.ollama/id_ed25519.pub` to their Hugging Face SSH keys). So pull.py handles it
unchanged; the only helper here tells callers whether a name points at Hugging Face (e.g. for a
hint in an error message). Hugging Face tells clients apart by User-Agent (llama.cpp gets a
different JSON), which is why client.py sends an Ollama-style User-Agent.
"""

from __future__ import annotations

from pollama.names import Name

HOSTS = frozenset({"hf.co", "huggingface.co"})


def is_hugging_face(name: Name) -> bool:
    """True for `hf.co/...` and `huggingface.co/...` names."""
    return name.host.lower() in HOSTS
