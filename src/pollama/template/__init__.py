"""Prompt templates: Ollama's Go ``text/template`` prompts and GGUF Jinja chat templates."""
