# Security work: the audit trail is append-only in the database itself.
#
# UPDATE is refused on every backend. DELETE is refused outright on PostgreSQL (the
# test suite's flush uses TRUNCATE there, which row triggers do not see). On SQLite the
# flush is `DELETE FROM campaigns_auditevent`, which fires row triggers; there the
# trigger refuses every DELETE except of the oldest remaining row. A full wipe (the
# flush, which deletes in rowid order) therefore passes; removing any row in the
# middle or at the newest end - the truncation the hash chain alone cannot see - is
# refused; and removing the oldest rows while later ones remain is caught by
# verify_chain (the new first row no longer links to the genesis hash).
#
# On SQLite a migration that rebuilds campaigns_auditevent (AlterField and friends)
# drops these triggers: re-create them in that migration
# (tests/test_audit_trail.py::test_append_only_triggers_are_installed fails otherwise).
from django.db import migrations

MESSAGE = "audit events are append-only"

SQLITE_FORWARD = [
    f"""CREATE TRIGGER campaigns_auditevent_no_update
    BEFORE UPDATE ON campaigns_auditevent
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER campaigns_auditevent_no_delete
    BEFORE DELETE ON campaigns_auditevent
    WHEN OLD.id <> (SELECT min(id) FROM campaigns_auditevent)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS campaigns_auditevent_no_update",
    "DROP TRIGGER IF EXISTS campaigns_auditevent_no_delete",
]
POSTGRESQL_FORWARD = [
    f"""CREATE OR REPLACE FUNCTION campaigns_auditevent_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
    END
    $$""",
    """CREATE TRIGGER campaigns_auditevent_append_only
    BEFORE UPDATE OR DELETE ON campaigns_auditevent
    FOR EACH ROW EXECUTE FUNCTION campaigns_auditevent_append_only()""",
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS campaigns_auditevent_append_only ON campaigns_auditevent",
    "DROP FUNCTION IF EXISTS campaigns_auditevent_append_only()",
]
SQL = {
    "sqlite": (SQLITE_FORWARD, SQLITE_REVERSE),
    "postgresql": (POSTGRESQL_FORWARD, POSTGRESQL_REVERSE),
}


def _run(schema_editor, forward: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in SQL:
        raise RuntimeError(f"no append-only audit triggers written for {vendor}")
    for statement in SQL[vendor][0 if forward else 1]:
        schema_editor.execute(statement, params=None)


def add_triggers(apps, schema_editor):
    _run(schema_editor, forward=True)


def drop_triggers(apps, schema_editor):
    _run(schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0004_user_preference")]

    operations = [migrations.RunPython(add_triggers, drop_triggers)]
