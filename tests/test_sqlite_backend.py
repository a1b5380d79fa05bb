"""The SQLite backend queues write transactions on an OS lock beside the database, so a
busy send job cannot starve a web request's write (pushconsole/sqlite/base.py)."""

from __future__ import annotations

import fcntl
import os

import pytest
from django.db import connection, transaction

from accounts.models import UserPreference

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only"),
]


def writers_lock_is_free() -> bool:
    fd = os.open(f"{connection.settings_dict['NAME']}.writers", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def test_a_write_transaction_holds_the_writers_lock_until_it_commits(marketer):
    assert writers_lock_is_free()
    with transaction.atomic():
        UserPreference.objects.update_or_create(user=marketer, defaults={"language": "en"})
        assert not writers_lock_is_free()  # another process's writer would queue here
    assert writers_lock_is_free()
    assert UserPreference.objects.get(user=marketer).language == "en"


def test_a_rolled_back_transaction_releases_the_writers_lock(marketer):
    with pytest.raises(RuntimeError), transaction.atomic():
        UserPreference.objects.update_or_create(user=marketer, defaults={"language": "en"})
        raise RuntimeError("changed my mind")
    assert writers_lock_is_free()
    assert not UserPreference.objects.filter(user=marketer).exists()
