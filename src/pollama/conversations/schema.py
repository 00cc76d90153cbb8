"""The conversation database's schema, migrated forward by number (`PRAGMA user_version`).

Each entry of `MIGRATIONS` takes a database from version N-1 to N inside one transaction, so a
migration is applied whole or not at all; a database opened by an older pollama is brought up
to `SCHEMA_VERSION`, one newer than this pollama knows is refused (never rewritten).

    1  conversations, messages (one row each, answers with their stats), images (bytes by
       sha256 digest) and message_images (which message shows which image, in order)
    2  full-text search (FTS5): messages_fts over message contents, titles_fts over titles,
       kept in step by triggers, filled from the rows already there
    3  responses: `/v1/responses` objects stored with the history they continue
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE conversations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT UNIQUE,
        model TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        system TEXT NOT NULL DEFAULT '',
        options TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX conversations_updated ON conversations (updated_at DESC, seq DESC);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL DEFAULT '',
        thinking TEXT,
        tool_calls TEXT,
        tool_name TEXT,
        tool_call_id TEXT,
        model TEXT,
        stats TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_conversation ON messages (conversation_id, id);
    CREATE TABLE images (
        digest TEXT PRIMARY KEY,
        data BLOB NOT NULL
    );
    CREATE TABLE message_images (
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        digest TEXT NOT NULL REFERENCES images (digest),
        PRIMARY KEY (message_id, position)
    );
    CREATE INDEX message_images_digest ON message_images (digest);
    """,
    # 2
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5 (content);
    CREATE VIRTUAL TABLE titles_fts USING fts5 (title);
    INSERT INTO messages_fts (rowid, content) SELECT id, content FROM messages;
    INSERT INTO titles_fts (rowid, title) SELECT seq, title FROM conversations;
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        DELETE FROM messages_fts WHERE rowid = old.id;
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        UPDATE messages_fts SET content = new.content WHERE rowid = old.id;
    END;
    CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO titles_fts (rowid, title) VALUES (new.seq, new.title);
    END;
    CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN
        DELETE FROM titles_fts WHERE rowid = old.seq;
    END;
    CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations BEGIN
        UPDATE titles_fts SET title = new.title WHERE rowid = old.seq;
    END;
    """,
    # 3
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        previous_id TEXT,
        model TEXT NOT NULL,
        history TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer pollama: refused rather than rewritten."""


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the database's version up to `target`; returns the version.

    `conn` must be in autocommit mode (isolation_level None): each migration runs in its own
    BEGIN IMMEDIATE … COMMIT, its `user_version` bump included.
    """
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(f"the conversation database has schema version {current}, newer "
                           f"than this pollama knows ({SCHEMA_VERSION}): upgrade pollama")
    for number in range(current + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version(conn)


def _statements(script: str) -> list[str]:
    """A migration's statements, split where sqlite3 says a statement is complete (triggers
    hold semicolons of their own)."""
    out, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                out.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out
