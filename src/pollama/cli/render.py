"""Text the CLI prints the way Ollama prints it: tables, relative times, `show` sections."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pollama.formats.gguf import human_bytes, human_number

__all__ = ["human_bytes", "human_number", "human_time", "show_info", "table"]


def table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """A borderless, left-aligned table with 4-space padding (Ollama's tablewriter settings)."""
    all_rows = ([header] if header else []) + rows
    if not all_rows:
        return ""
    widths = [max(len(r[i]) if i < len(r) else 0 for r in all_rows)
              for i in range(max(len(r) for r in all_rows))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("    ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        # Go writes up to 9 fractional digits; Python's parser takes at most 6.
        head, dot, rest = text.partition(".")
        if dot:
            digits = "".join(ch for ch in rest if ch.isdigit())
            zone = rest[len(digits):]
            text = f"{head}.{digits[:6]}{zone}"
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def human_time(text: str, zero: str = "Never") -> str:
    """`4 hours ago`, `3 minutes from now`, `Forever`, as Ollama's format.HumanTime."""
    when = parse_time(text)
    if when is None or when.year <= 1:
        return zero
    delta = (datetime.now(UTC) - when).total_seconds()
    if delta / 3600 / 24 / 365 < -20:
        return "Forever"
    if delta < 0:
        return _human_duration(-delta) + " from now"
    return _human_duration(delta) + " ago"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _abbreviate(values: list[Any]) -> str:
    shown: list[str] = []
    width = 1
    for i, item in enumerate(values):
        text = str(item)
        w = len(text) + (2 if i else 0)
        if width + w > 10 and i > 0:
            break
        shown.append(text)
        width += w
    rest = len(values) - len(shown)
    inner = " ".join(shown)
    return f"[{inner} ...+{rest} more]" if rest else f"[{inner}]"


def _section(header: str, rows: list[list[str]]) -> str:
    return f"  {header}\n" + table([["", *r] for r in rows]) + "\n"


def _first_lines(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    rows = [[line] for line in lines[:2]]
    if len(lines) > 2:
        rows.append(["..."])
    return rows


def show_info(resp: dict[str, Any], verbose: bool = False) -> str:
    """The default `ollama show` output (spec CLI-46)."""
    out = []
    info = resp.get("model_info") or {}
    details = resp.get("details") or {}
    rows: list[list[str]] = []
    if info:
        arch = str(info.get("general.architecture", ""))
        if arch:
            rows.append(["architecture", arch])
        params = details.get("parameter_size") or (
            human_number(int(info["general.parameter_count"]))
            if "general.parameter_count" in info else "")
        if params:
            rows.append(["parameters", params])
        if f"{arch}.context_length" in info:
            rows.append(["context length", _number(info[f"{arch}.context_length"])])
        if f"{arch}.embedding_length" in info:
            rows.append(["embedding length", _number(info[f"{arch}.embedding_length"])])
    else:
        rows.append(["architecture", str(details.get("family", ""))])
        rows.append(["parameters", str(details.get("parameter_size", ""))])
    rows.append(["quantization", str(details.get("quantization_level", ""))])
    if resp.get("requires"):
        rows.append(["requires", resp["requires"]])
    out.append(_section("Model", rows))
    if resp.get("capabilities"):
        out.append(_section("Capabilities", [[c] for c in resp["capabilities"]]))
    projector = resp.get("projector_info")
    if projector:
        arch = str(projector.get("general.architecture", ""))
        prow = [["architecture", arch]] if arch else []
        if "general.parameter_count" in projector:
            prow.append(["parameters", human_number(int(projector["general.parameter_count"]))])
        out.append(_section("Projector", prow))
    if resp.get("parameters"):
        out.append(_section("Parameters", [line.split() for line in
                                           resp["parameters"].splitlines() if line.strip()]))
    if verbose and info:
        meta = []
        for key in sorted(info):
            value = info[key]
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, list):
                text = _abbreviate(value)
            else:
                text = _number(value)
            meta.append([key, text])
        out.append(_section("Metadata", meta))
        tensors = resp.get("tensors") or []
        if tensors:
            out.append(_section("Tensors", [[t.get("name", ""), t.get("type", ""),
                                             str(t.get("shape", []))] for t in tensors]))
    if resp.get("system"):
        out.append(_section("System", _first_lines(resp["system"])))
    if resp.get("license"):
        out.append(_section("License", _first_lines(resp["license"])))
    return "".join(out)
