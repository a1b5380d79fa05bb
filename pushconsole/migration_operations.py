"""Migration operations for large tables.

On PostgreSQL an index on the delivery or batch table (millions of rows) is built with
CREATE INDEX CONCURRENTLY, so sending and the history pages keep writing and reading
while it builds instead of waiting behind a lock for minutes. SQLite has no concurrent
build (any write locks the whole file anyway), so there it is a plain CREATE INDEX.
A migration using these must set `atomic = False`: PostgreSQL refuses a concurrent build
inside a transaction.
"""

from __future__ import annotations

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db.migrations.operations import AddIndex


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """AddIndexConcurrently on PostgreSQL, AddIndex on every other database."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
