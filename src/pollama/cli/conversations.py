"""`pollama conversations ls | show | rm | export`: the server's stored conversations (beyond
Ollama), and what `pollama run --conversation` and the REPL's `/conversations` and `/resume`
share: finding or starting a named conversation, printing a transcript."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, TextIO

import typer

from pollama.cli.client import Client, ClientError
from pollama.cli.render import human_time, table

app = typer.Typer(help="List, show, remove and export stored conversations",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})


def _client() -> Client:
    client = Client()
    client.ensure_server()
    return client


def conversation_table(conversations: list[dict[str, Any]]) -> str:
    rows = [[c["id"][:12], c.get("name") or "", c.get("title") or "", c["model"],
             str(c.get("message_count", "")), human_time(c.get("updated_at", ""))]
            for c in conversations]
    return table(rows, ["ID", "NAME", "TITLE", "MODEL", "MESSAGES", "UPDATED"])


def find(client: Client, ref: str) -> dict[str, Any] | None:
    """The conversation with this id or name (its messages included); None when there is none."""
    try:
        found: dict[str, Any] = client.request("GET", f"/api/conversations/{ref}")
    except ClientError as err:
        if err.status == 404:
            return None
        raise
    return found


def open_named(client: Client, name: str, model: str) -> dict[str, Any]:
    """The conversation called `name`, started on `model` when there is none yet."""
    found = find(client, name)
    if found is not None:
        return found
    made: dict[str, Any] = client.request("POST", "/api/conversations",
                                          {"model": model, "name": name})
    made["messages"] = []
    return made


def transcript(conversation: dict[str, Any], out: TextIO) -> None:
    """Messages as the REPL shows them: `>>> ` before what the user said, answers as text."""
    for message in conversation.get("messages") or []:
        role = message.get("role")
        if role == "user":
            out.write(f">>> {message.get('content', '')}\n")
        elif role == "assistant":
            out.write(f"{message.get('content', '')}\n\n")
    out.flush()


def markdown(conversation: dict[str, Any]) -> str:
    title = conversation.get("title") or conversation.get("name") or conversation["id"]
    lines = [f"# {title}", "", f"- id: {conversation['id']}",
             f"- model: {conversation['model']}", f"- created: {conversation['created_at']}"]
    if conversation.get("system"):
        lines += ["", "## system", "", conversation["system"]]
    for message in conversation.get("messages") or []:
        lines += ["", f"## {message.get('role')} ({message.get('created_at', '')})", "",
                  str(message.get("content") or "")]
        for digest in message.get("images") or []:
            lines.append(f"\n![image]({digest})")
    return "\n".join(lines) + "\n"


@app.command("ls", help="List conversations, newest first")
def ls(query: Annotated[str, typer.Option("--search", "-s", help="Only those whose title or "
                                          "messages contain these words")] = "",
       limit: Annotated[int, typer.Option("--limit", "-n", help="How many")] = 50) -> None:
    params = f"?limit={limit}" + (f"&q={query}" if query else "")
    found = _client().request("GET", f"/api/conversations{params}")["conversations"]
    sys.stdout.write(conversation_table(found))


@app.command("show", help="Print a conversation's messages")
def show(ref: Annotated[str, typer.Argument(metavar="ID", help="id or name")]) -> None:
    found = find(_client(), ref)
    if found is None:
        raise ClientError(f"conversation '{ref}' not found", 404)
    transcript(found, sys.stdout)


@app.command("rm", help="Remove conversations")
def rm(refs: Annotated[list[str], typer.Argument(metavar="ID", help="ids or names")]) -> None:
    client = _client()
    for ref in refs:
        client.request("DELETE", f"/api/conversations/{ref}")
        print(f"deleted '{ref}'")


@app.command("export", help="Write a conversation as JSON or Markdown to stdout")
def export(ref: Annotated[str, typer.Argument(metavar="ID", help="id or name")],
           fmt: Annotated[str, typer.Option("--format", help="json or md")] = "json") -> None:
    if fmt not in ("json", "md"):
        raise ClientError(f"unknown format '{fmt}': use json or md")
    found = find(_client(), ref)
    if found is None:
        raise ClientError(f"conversation '{ref}' not found", 404)
    if fmt == "json":
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(markdown(found))
