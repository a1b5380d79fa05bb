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
from django.db.migrations.operations.base import Operation


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


class DropColumnIndex(Operation):
    """Drop the plain one-column index Django made for `field` (a ForeignKey's, or
    db_index=True) without touching the table: DROP INDEX CONCURRENTLY on PostgreSQL
    (the migration must set `atomic = False`), DROP INDEX on SQLite, where AlterField
    would copy the whole table to drop one index. The field's new state (db_index=False)
    is given with it, in SeparateDatabaseAndState."""

    reduces_to_sql = False
    reversible = True

    def __init__(self, model_name: str, column: str) -> None:
        self.model_name, self.column = model_name, column

    def state_forwards(self, app_label, state):
        pass

    def _index_names(self, schema_editor, table: str) -> list[str]:
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, table)
        return [
            name
            for name, info in found.items()
            if info["index"]
            and not info["unique"]
            and not info["primary_key"]
            and info["columns"] == [self.column]
        ]

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        table = model._meta.db_table
        concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
        for name in self._index_names(schema_editor, table):
            schema_editor.execute(
                f"DROP INDEX{concurrently} IF EXISTS {schema_editor.quote_name(name)}"
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        table = model._meta.db_table
        name = schema_editor._create_index_name(table, [self.column])
        concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(
            f"CREATE INDEX{concurrently} IF NOT EXISTS {schema_editor.quote_name(name)} "
            f"ON {schema_editor.quote_name(table)} ({schema_editor.quote_name(self.column)})"
        )

    def describe(self) -> str:
        return f"Drop the index on {self.model_name}.{self.column}"
