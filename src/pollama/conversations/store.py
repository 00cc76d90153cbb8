"""Conversations kept by the server in one SQLite file (`~/.ollama/pollama.db`).

WAL mode, foreign keys on, `synchronous = FULL`: a committed message survives a crash or a
`kill -9`. One connection serves every thread, behind a lock; the server calls these methods
from worker threads (`asyncio.to_thread`) so the event loop never waits on the disk.

A conversation is found by its id or by its name (names are optional and unique). Messages are
native chat messages; an image is stored once, by the sha256 digest of its bytes, and a message
lists the digests of its images. A full disk is `StoreFull` with the transaction rolled back,
so the database stays as it was.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pollama.conversations.schema import migrate
from pollama.errors import BadRequest, NotFound, PollamaError, StorageError

P = ParamSpec("P")
T = TypeVar("T")

# The stats an answer keeps, as the final chunk of /api/chat names them.
STATS = ("done_reason", "total_duration", "load_duration", "prompt_eval_count",
         "prompt_eval_duration", "eval_count", "eval_duration")
MAX_LIMIT = 1000
# SQLite's integers are 64-bit: an offset past every row means "none", however large it is
_SQL_MAX = 2**63 - 1
TITLE_LENGTH = 80


class ConversationNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"conversation '{ref}' not found")


class ResponseNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"Response with id '{ref}' not found.")


class NameTaken(PollamaError):
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"a conversation named '{name}' already exists")


class StoreFull(StorageError):
    """SQLite's `database or disk is full`: nothing of the failed write was kept."""


def now() -> str:
    """RFC 3339 in UTC with microseconds (sorts as text), as Go marshals a time."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _guard(method: Callable[P, T]) -> Callable[P, T]:
    """Map SQLite's disk-full error to `StoreFull` (the transaction is already rolled back)."""
    @wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as err:
            if "full" in str(err):
                store = args[0]
                raise StoreFull(f"cannot store the conversation: {err} "
                                f"({getattr(store, 'path', '')})") from None
            raise StorageError(f"conversation store: {err}") from err
    return run


def fts_query(text: str) -> str:
    """Words of a search → an FTS5 query: every word must appear, each as a prefix; quotes
    keep FTS5's operators (AND, NEAR, *, :) from being read in the user's text."""
    # SQLite hands FTS5 the query as a C string: a NUL would end it inside a quoted word
    words = [w.replace('"', '""') for w in text.replace("\0", " ").split()]
    return " ".join(f'"{w}"*' for w in words if w)


class ConversationStore:
    """The conversations (and stored `/v1/responses`) of one server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Create or open the database and bring its schema up to date."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the lock; rolled back on any error."""
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the conversation store is closed")
        return self._conn

    # -- conversations ---------------------------------------------------------------------

    @staticmethod
    def _conversation(row: sqlite3.Row) -> dict[str, Any]:
        out = {"id": row["id"], "model": row["model"], "title": row["title"],
               "system": row["system"], "options": json.loads(row["options"]),
               "created_at": row["created_at"], "updated_at": row["updated_at"]}
        if row["name"] is not None:
            out["name"] = row["name"]
        if "message_count" in row.keys():  # noqa: SIM118 - sqlite3.Row has no __contains__
            out["message_count"] = row["message_count"]
        return out

    @staticmethod
    def _find(conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM conversations WHERE id = ?", (ref,)).fetchone() or \
            conn.execute("SELECT * FROM conversations WHERE name = ?", (ref,)).fetchone()
        if row is None:
            raise ConversationNotFound(ref)
        return row

    @_guard
    def create(self, model: str, *, name: str | None = None, title: str = "", system: str = "",
               options: dict[str, Any] | None = None) -> dict[str, Any]:
        if not model:
            raise BadRequest("model is required")
        if name is not None and not name.strip():
            raise BadRequest("a conversation name cannot be empty")
        stamp = now()
        with self._tx() as conn:
            if name is not None and conn.execute(
                    "SELECT 1 FROM conversations WHERE name = ? OR id = ?",
                    (name, name)).fetchone():
                raise NameTaken(name)
            conversation_id = uuid.uuid4().hex
            conn.execute("INSERT INTO conversations (id, name, model, title, system, options, "
                         "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (conversation_id, name, model, title, system,
                          json.dumps(options or {}), stamp, stamp))
            return self._conversation(self._find(conn, conversation_id))

    @_guard
    def get(self, ref: str) -> dict[str, Any]:
        """A conversation and its messages (images by digest, answers with their stats)."""
        with self._read() as conn:
            row = self._find(conn, ref)
            out = self._conversation(row)
            out["messages"] = [self._message(conn, m) for m in conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (row["id"],))]
            return out

    @_guard
    def search(self, *, limit: int = 50, offset: int = 0, q: str = "") -> list[dict[str, Any]]:
        """Newest first (last message or edit); `q` keeps those whose title or a message
        contains every word of it (FTS5, prefix match)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise BadRequest("offset must not be negative")
        offset = min(offset, _SQL_MAX)
        where, params = "", []
        query = fts_query(q)
        if query:
            where = ("WHERE c.seq IN (SELECT rowid FROM titles_fts WHERE titles_fts MATCH ?) "
                     "OR c.id IN (SELECT conversation_id FROM messages WHERE id IN "
                     "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?))")
            params = [query, query]
        with self._read() as conn:
            rows = conn.execute(
                "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) "
                f"AS message_count FROM conversations c {where} "
                "ORDER BY c.updated_at DESC, c.seq DESC LIMIT ? OFFSET ?",
                [*params, limit, offset]).fetchall()
        return [self._conversation(r) for r in rows]

    @_guard
    def update(self, ref: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change `title`, `system`, `options` or `name` (the keys present in `changes`)."""
        with self._tx() as conn:
            row = self._find(conn, ref)
            name = changes.get("name")
            if name is not None:
                if not name.strip():
                    raise BadRequest("a conversation name cannot be empty")
                taken = conn.execute("SELECT id FROM conversations WHERE name = ? OR id = ?",
                                     (name, name)).fetchone()
                if taken and taken["id"] != row["id"]:
                    raise NameTaken(name)
            sets, values = [], []
            for key in ("title", "system", "options", "name"):
                if key in changes:
                    sets.append(f"{key} = ?")
                    value = changes[key]
                    values.append(json.dumps(value or {}) if key == "options" else value)
            sets.append("updated_at = ?")
            values.append(now())
            conn.execute(f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?",
                         (*values, row["id"]))
            return self._conversation(self._find(conn, row["id"]))

    @_guard
    def delete(self, ref: str) -> None:
        """Delete a conversation, its messages, and the images no other message shows."""
        with self._tx() as conn:
            row = self._find(conn, ref)
            digests = [r[0] for r in conn.execute(
                "SELECT DISTINCT i.digest FROM message_images i JOIN messages m "
                "ON m.id = i.message_id WHERE m.conversation_id = ?", (row["id"],))]
            conn.execute("DELETE FROM conversations WHERE id = ?", (row["id"],))
            self._drop_unused_images(conn, digests)

    @staticmethod
    def _drop_unused_images(conn: sqlite3.Connection, digests: list[str]) -> None:
        for digest in digests:
            conn.execute("DELETE FROM images WHERE digest = ? AND NOT EXISTS "
                         "(SELECT 1 FROM message_images WHERE digest = ?)", (digest, digest))

    # -- messages --------------------------------------------------------------------------

    @staticmethod
    def _message(conn: sqlite3.Connection, row: sqlite3.Row, *,
                 image_data: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"role": row["role"], "content": row["content"]}
        if row["thinking"]:
            out["thinking"] = row["thinking"]
        digests = [r[0] for r in conn.execute(
            "SELECT digest FROM message_images WHERE message_id = ? ORDER BY position",
            (row["id"],))]
        if digests and image_data:
            out["images"] = [base64.b64encode(conn.execute(
                "SELECT data FROM images WHERE digest = ?", (d,)).fetchone()[0]).decode()
                for d in digests]
        elif digests:
            out["images"] = digests
        if row["tool_calls"]:
            out["tool_calls"] = json.loads(row["tool_calls"])
        for key in ("tool_name", "tool_call_id"):
            if row[key]:
                out[key] = row[key]
        if image_data:
            return out
        out["created_at"] = row["created_at"]
        if row["model"]:
            out["model"] = row["model"]
        out.update(json.loads(row["stats"] or "{}"))
        return out

    @_guard
    def history(self, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The conversation and its messages as a chat request carries them (images base64)."""
        with self._read() as conn:
            row = self._find(conn, ref)
            messages = [self._message(conn, m, image_data=True) for m in conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (row["id"],))]
            return self._conversation(row), messages

    @_guard
    def add_messages(self, conversation_id: str, messages: list[dict[str, Any]], *,
                     model: str | None = None, stats: dict[str, Any] | None = None) -> list[int]:
        """Append native messages (images base64) in one transaction; returns their ids.
        `model` and `stats` go with an answer. The first user message titles an untitled
        conversation."""
        stamp = now()
        ids = []
        with self._tx() as conn:
            row = self._find(conn, conversation_id)
            for message in messages:
                calls = message.get("tool_calls")
                cursor = conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, thinking, tool_calls, "
                    "tool_name, tool_call_id, model, stats, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["id"], message.get("role") or "", message.get("content") or "",
                     message.get("thinking") or None, json.dumps(calls) if calls else None,
                     message.get("tool_name") or None, message.get("tool_call_id") or None,
                     model, json.dumps({k: v for k, v in (stats or {}).items() if k in STATS})
                     if stats else None, stamp))
                message_id = int(cursor.lastrowid or 0)
                ids.append(message_id)
                for position, image in enumerate(message.get("images") or []):
                    try:
                        data = base64.b64decode(image, validate=True)
                    except (binascii.Error, ValueError):
                        raise BadRequest(f"image {position + 1} of a new message is not valid "
                                         "base64") from None
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    conn.execute("INSERT OR IGNORE INTO images (digest, data) VALUES (?, ?)",
                                 (digest, data))
                    conn.execute("INSERT INTO message_images (message_id, position, digest) "
                                 "VALUES (?, ?, ?)", (message_id, position, digest))
            title = row["title"]
            if not title:
                first = next((m.get("content") or "" for m in messages
                              if m.get("role") == "user" and m.get("content")), "")
                title = " ".join(first.split())[:TITLE_LENGTH]
            conn.execute("UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?",
                         (stamp, title, row["id"]))
        return ids

    @_guard
    def remove_messages(self, ids: list[int]) -> None:
        """Take back messages a refused request added (its images too, when unused)."""
        with self._tx() as conn:
            digests = [r[0] for i in ids for r in conn.execute(
                "SELECT digest FROM message_images WHERE message_id = ?", (i,))]
            conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            self._drop_unused_images(conn, digests)

    @_guard
    def truncate(self, ref: str, start: int) -> dict[str, Any]:
        """Delete the conversation's messages from position `start` (0-based, in `get`'s order)
        on, and the images no other message shows; returns the conversation. Regenerating an
        answer is truncating at its question, then asking it again."""
        if start < 0:
            raise BadRequest("from must not be negative")
        start = min(start, _SQL_MAX)
        with self._tx() as conn:
            row = self._find(conn, ref)
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM messages WHERE conversation_id = ? ORDER BY id LIMIT -1 OFFSET ?",
                (row["id"], start))]
            digests = [r[0] for i in ids for r in conn.execute(
                "SELECT digest FROM message_images WHERE message_id = ?", (i,))]
            conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            self._drop_unused_images(conn, digests)
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                         (now(), row["id"]))
            return self._conversation(self._find(conn, row["id"]))

    @_guard
    def image(self, ref: str, digest: str) -> bytes:
        """The bytes of an image a message of the conversation shows."""
        with self._read() as conn:
            row = self._find(conn, ref)
            found = conn.execute(
                "SELECT i.data FROM images i JOIN message_images mi ON mi.digest = i.digest "
                "JOIN messages m ON m.id = mi.message_id WHERE m.conversation_id = ? "
                "AND i.digest = ? LIMIT 1", (row["id"], digest)).fetchone()
        if found is None:
            raise NotFound(f"image '{digest}' not found in conversation '{ref}'")
        return bytes(found[0])

    # -- /v1/responses ---------------------------------------------------------------------

    @_guard
    def save_response(self, response: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Keep a response object and the messages a later one continues from."""
        with self._tx() as conn:
            conn.execute("INSERT INTO responses (id, previous_id, model, history, response, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (response["id"], response.get("previous_response_id"),
                          response.get("model") or "", json.dumps(history),
                          json.dumps(response), now()))

    @_guard
    def response(self, response_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with self._read() as conn:
            row = conn.execute("SELECT response, history FROM responses WHERE id = ?",
                               (response_id,)).fetchone()
        if row is None:
            raise ResponseNotFound(response_id)
        return json.loads(row["response"]), json.loads(row["history"])

    @_guard
    def delete_response(self, response_id: str) -> None:
        with self._tx() as conn:
            if conn.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount == 0:
                raise ResponseNotFound(response_id)
