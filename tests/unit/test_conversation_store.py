"""The conversation store on a real SQLite file: migrations, search, messages, images."""

from __future__ import annotations

import base64
import sqlite3

import pytest

from pollama.config import Config
from pollama.conversations import (
    SCHEMA_VERSION,
    ConversationNotFound,
    ConversationStore,
    NameTaken,
    SchemaTooNew,
    migrate,
)
from pollama.conversations.store import fts_query
from pollama.errors import BadRequest


@pytest.fixture
def store(tmp_path):
    s = ConversationStore(tmp_path / "pollama.db")
    s.open()
    yield s
    s.close()


def test_new_database_is_wal_with_foreign_keys_at_the_latest_version(tmp_path, store):
    conn = sqlite3.connect(tmp_path / "pollama.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
    assert store._db().execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrates_a_version_1_database_and_indexes_its_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 1
    conn.execute("INSERT INTO conversations (id, model, title, created_at, updated_at) "
                 "VALUES ('c1', 'smollm2:135m', 'Old title', '2024-01-01T00:00:00Z', "
                 "'2024-01-01T00:00:00Z')")
    conn.execute("INSERT INTO messages (conversation_id, role, content, created_at) "
                 "VALUES ('c1', 'user', 'tell me about penguins', '2024-01-01T00:00:00Z')")
    conn.close()

    store = ConversationStore(path)
    store.open()
    try:
        assert store._db().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [c["id"] for c in store.search(q="penguin")] == ["c1"]  # FTS filled from old rows
        assert [c["id"] for c in store.search(q="old TITLE")] == ["c1"]
        assert store.search(q="giraffe") == []
        conversation = store.get("c1")
        assert conversation["messages"][0]["content"] == "tell me about penguins"
        store.save_response({"id": "resp_1", "model": "m"}, [])  # version 3's table
        assert store.response("resp_1")[0]["id"] == "resp_1"
    finally:
        store.close()


def test_a_newer_schema_is_refused_not_rewritten(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="upgrade pollama"):
        ConversationStore(path).open()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == \
        SCHEMA_VERSION + 1


def test_search_lists_and_pages_newest_first(store):
    made = [store.create("m", title=f"chat {i}") for i in range(5)]
    store.add_messages(made[1]["id"], [{"role": "user", "content": "The quick brown fox"}])
    listed = store.search()
    assert listed[0]["id"] == made[1]["id"]  # the last message makes it the newest
    assert [c["id"] for c in listed[1:]] == [c["id"] for c in reversed(made) if c != made[1]]
    assert [c["id"] for c in store.search(limit=2, offset=1)] == [c["id"] for c in listed[1:3]]
    assert [c["id"] for c in store.search(q="quick fox")] == [made[1]["id"]]
    assert store.search(q="quick cat") == []  # every word must match
    assert [c["id"] for c in store.search(q='qui "AND')] == []  # operators are plain words
    assert len(store.search(q="chat")) == 5  # titles are searched too
    with pytest.raises(BadRequest):
        store.search(limit=0)


def test_fts_query_quotes_words():
    assert fts_query('a "b" NEAR') == '"a"* """b"""* "NEAR"*'
    assert fts_query("   ") == ""


def test_messages_images_names_and_delete(store):
    c = store.create("m", name="work")
    with pytest.raises(NameTaken):
        store.create("m", name="work")
    image = base64.b64encode(b"\x89PNG fake bytes").decode()
    store.add_messages("work", [{"role": "user", "content": "look", "images": [image]}])
    store.add_messages(c["id"], [{"role": "assistant", "content": "a picture"}],
                       model="m", stats={"eval_count": 3, "done_reason": "stop", "other": 1})
    got = store.get("work")
    assert got["title"] == "look"  # titled by its first message
    user, answer = got["messages"]
    assert user["images"][0].startswith("sha256:")
    assert store.image("work", user["images"][0]) == b"\x89PNG fake bytes"
    assert answer["eval_count"] == 3 and answer["done_reason"] == "stop" and "other" not in answer
    _, history = store.history(c["id"])
    assert history[0]["images"] == [image] and "created_at" not in history[0]
    with pytest.raises(BadRequest, match="base64"):
        store.add_messages("work", [{"role": "user", "content": "x", "images": ["%%%"]}])
    assert len(store.get("work")["messages"]) == 2  # the refused write left nothing
    store.delete("work")
    with pytest.raises(ConversationNotFound):
        store.get(c["id"])
    assert store._db().execute("SELECT count(*) FROM images").fetchone()[0] == 0
    assert store._db().execute("SELECT count(*) FROM messages_fts").fetchone()[0] == 0


def test_config_conversations_path(tmp_path):
    home = tmp_path / "h"
    assert Config.from_env({"HOME": str(home)}).conversations == home / ".ollama" / "pollama.db"
    for off in ("0", "false", "off", "FALSE"):
        assert Config.from_env({"HOME": str(home), "OLLAMA_CONVERSATIONS": off}
                               ).conversations is None
    assert Config.from_env({"HOME": str(home), "OLLAMA_CONVERSATIONS": str(tmp_path / "c.db")}
                           ).conversations == tmp_path / "c.db"


def test_any_search_text_and_offset_is_an_answer_not_a_storage_error(store):
    """Found by fuzzing GET /api/conversations: a NUL in `q` ended FTS5's query inside a quoted
    word ("unterminated string"), an offset past 64 bits overflowed SQLite: both were 500s."""
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st

    made = store.create("m", title="hello world")
    assert store.truncate(made["id"], 2**70)["id"] == made["id"]  # from past the end: nothing

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(max_size=20), st.integers(min_value=0, max_value=2**80))
    @example("a\x00b", 0)
    @example('"\x00', 0)
    @example("hello", 2**70)
    def search(q: str, offset: int) -> None:
        found = store.search(q=q, offset=offset)
        assert isinstance(found, list)

    search()
    assert [c["title"] for c in store.search(q="hel\x00")] == ["hello world"]
    assert store.search(offset=2**70) == []
