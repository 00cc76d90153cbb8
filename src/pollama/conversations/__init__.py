"""Conversations the server keeps (SQLite, schema migrated by version): see `store.py`."""

from pollama.conversations.schema import SCHEMA_VERSION, SchemaTooNew, migrate
from pollama.conversations.store import (
    ConversationNotFound,
    ConversationStore,
    NameTaken,
    ResponseNotFound,
    StoreFull,
)

__all__ = ["SCHEMA_VERSION", "ConversationNotFound", "ConversationStore", "NameTaken",
           "ResponseNotFound", "SchemaTooNew", "StoreFull", "migrate"]
