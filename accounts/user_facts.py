"""What every request needs to know about its signed-in user, read in one statement.

Each page asks three things of the user before its view runs: the language they chose
(UserLanguageMiddleware), whether they enrolled an authenticator (TwoFactorMiddleware)
and which roles they hold (roles_of, for the view's check and the menu). Asked one by
one, that is three trips to the database on every request, and a page that polls every
second while workers keep the database busy waits in line for each of them (issue 17).
`facts_of` asks all three at once and keeps the answer on the user object, which lives
for one request; the role check and the middlewares read it from there.

Pages that change one of these facts (the language form, enrolment) read afresh what
they need: `two_factor.confirmed_device` and `must_enrol` still query."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import connection

from accounts.models import SealedTOTPDevice, UserPreference

_CACHE = "_pushconsole_facts"
LANGUAGE, ROLE, DEVICE = "language", "role", "device"


@dataclass(frozen=True)
class UserFacts:
    language: str | None
    groups: frozenset[str]  # the names of the user's groups
    has_device: bool  # a confirmed authenticator is enrolled


@functools.cache
def _sql() -> str:
    q = connection.ops.quote_name
    user_groups = q(Group.user_set.through._meta.db_table)
    return (
        f"SELECT '{LANGUAGE}', p.language FROM {q(UserPreference._meta.db_table)} p"
        " WHERE p.user_id = %s"
        f" UNION ALL SELECT '{ROLE}', g.name FROM {q(Group._meta.db_table)} g"
        f" JOIN {user_groups} ug ON ug.group_id = g.id"
        " WHERE ug.user_id = %s"
        f" UNION ALL SELECT '{DEVICE}', '' FROM {q(SealedTOTPDevice._meta.db_table)} d"
        " WHERE d.user_id = %s AND d.confirmed = %s"
    )


def facts_of(user) -> UserFacts:
    """The language, the groups and the enrolment of a signed-in `user`, from one
    statement, kept on `user` for the rest of the request."""
    cached = getattr(user, _CACHE, None)
    if cached is None:
        with connection.cursor() as cursor:
            cursor.execute(_sql(), [user.pk, user.pk, user.pk, True])
            rows = cursor.fetchall()
        cached = UserFacts(
            language=next((value for kind, value in rows if kind == LANGUAGE), None),
            groups=frozenset(value for kind, value in rows if kind == ROLE),
            has_device=any(kind == DEVICE for kind, _value in rows),
        )
        setattr(user, _CACHE, cached)
    return cached
