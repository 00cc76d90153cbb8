"""pollama: run, create and share large language models locally — a drop-in for Ollama."""

__version__ = "0.1.0"
