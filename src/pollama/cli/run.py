"""`pollama run`: one-shot generation, piped input, and the chat loop (a client of the API)."""

from __future__ import annotations

import json
import sys
from typing import Any

from pollama.client import Client, ClientError
from pollama.config import parse_go_duration

THINK_VALUES = {"true": True, "": True, "false": False, "high": "high", "medium": "medium",
                "low": "low", "max": "max"}


def parse_think(value: str | None) -> bool | str | None:
    if value is None:
        return None
    if value not in THINK_VALUES:
        raise ClientError(f'invalid value for --think: "{value}" (must be true, false, high, '
                          'medium, low, or max)')
    return THINK_VALUES[value]


def parse_keepalive(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_go_duration(value)
    except ValueError as err:
        raise ClientError(str(err)) from None
    return value


def _format_duration(ns: int) -> str:
    """Go's time.Duration.String() of nanoseconds (e.g. 1.234567s, 12.5ms)."""
    from pollama.config import format_go_duration

    return format_go_duration(ns / 1e9)


def print_stats(final: dict[str, Any]) -> None:
    """Ollama's --verbose block (spec RUN-08), on stderr, non-zero fields only."""
    lines = []
    if final.get("total_duration"):
        lines.append(f"total duration:       {_format_duration(final['total_duration'])}")
    if final.get("load_duration"):
        lines.append(f"load duration:        {_format_duration(final['load_duration'])}")
    if final.get("prompt_eval_count"):
        lines.append(f"prompt eval count:    {final['prompt_eval_count']} token(s)")
    if final.get("prompt_eval_duration"):
        ns = final["prompt_eval_duration"]
        lines.append(f"prompt eval duration: {_format_duration(ns)}")
        rate = final.get("prompt_eval_count", 0) / (ns / 1e9)
        lines.append(f"prompt eval rate:     {rate:.2f} tokens/s")
    if final.get("eval_count"):
        lines.append(f"eval count:           {final['eval_count']} token(s)")
    if final.get("eval_duration"):
        ns = final["eval_duration"]
        lines.append(f"eval duration:        {_format_duration(ns)}")
        lines.append(f"eval rate:            {final.get('eval_count', 0) / (ns / 1e9):.2f} "
                     "tokens/s")
    print("\n".join(lines), file=sys.stderr)


def format_value(fmt: str | None) -> Any:
    if not fmt:
        return None
    if fmt == "json":
        return "json"
    try:
        return json.loads(fmt)
    except ValueError:
        return fmt


def generate_once(client: Client, model: str, prompt: str, *, keepalive: str | None,
                  fmt: str | None, think: bool | str | None, hidethinking: bool,
                  verbose: bool) -> None:
    """One-shot `/api/generate`, streamed to stdout as plain text."""
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if keepalive is not None:
        body["keep_alive"] = keepalive
    if fmt:
        body["format"] = format_value(fmt)
    if think is not None:
        body["think"] = think
    final: dict[str, Any] = {}
    thinking_open = False
    for chunk in client.stream("/api/generate", body):
        if chunk.get("thinking") and not hidethinking:
            if not thinking_open:
                sys.stdout.write("Thinking...\n")
                thinking_open = True
            sys.stdout.write(chunk["thinking"])
        if chunk.get("response"):
            if thinking_open:
                sys.stdout.write("\n...done thinking.\n\n")
                thinking_open = False
            sys.stdout.write(chunk["response"])
        sys.stdout.flush()
        if chunk.get("done"):
            final = chunk
    if prompt:
        sys.stdout.write("\n\n")
    sys.stdout.flush()
    if verbose:
        print_stats(final)


def chat_loop(client: Client, model: str, *, keepalive: str | None, fmt: str | None,
              think: bool | str | None, verbose: bool) -> None:
    """A plain line-by-line chat: each line is a user turn, the reply streams back."""
    messages: list[dict[str, Any]] = []
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print("\nUse Ctrl + d or /bye to exit.")
            continue
        if line.strip() in ("/bye", "/exit"):
            return
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        body: dict[str, Any] = {"model": model, "messages": messages}
        if keepalive is not None:
            body["keep_alive"] = keepalive
        if fmt:
            body["format"] = format_value(fmt)
        if think is not None:
            body["think"] = think
        reply = []
        final: dict[str, Any] = {}
        try:
            for chunk in client.stream("/api/chat", body):
                text = chunk.get("message", {}).get("content", "")
                reply.append(text)
                sys.stdout.write(text)
                sys.stdout.flush()
                if chunk.get("done"):
                    final = chunk
        except KeyboardInterrupt:
            print()
            continue
        messages.append({"role": "assistant", "content": "".join(reply)})
        sys.stdout.write("\n\n")
        if verbose:
            print_stats(final)
