"""Django's SQLite backend, with write transactions that queue instead of polling.

SQLite lets one writer in at a time. A writer that finds the lock taken polls for it:
busy_timeout sleeps 1, 2, 5, ... up to 100 ms between tries. A send job commits its
rounds back to back, so a web request that wants to write (a Pause click, a session
save) could lose that race for seconds. Here every write transaction first takes an OS
lock (`flock`) on a file beside the database; the kernel wakes a waiter as soon as the
holder lets go, so writers take turns. Readers are not involved (WAL).
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from django.db.backends.sqlite3 import base, creation


class DatabaseCreation(creation.DatabaseCreation):
    def _destroy_test_db(self, test_database_name, verbosity):
        super()._destroy_test_db(test_database_name, verbosity)
        if test_database_name and not self.is_in_memory_db(test_database_name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{test_database_name}.writers")


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation
    _writer_fd: int | None = None
    _writer_locked = False

    def _writer_lock_path(self) -> str | None:
        name = str(self.settings_dict["NAME"] or "")
        if not name or self.is_in_memory_db():
            return None
        return f"{name}.writers"

    def _lock_writers(self) -> None:
        path = self._writer_lock_path()
        if path is None or self._writer_locked:
            return
        if self._writer_fd is None:
            self._writer_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._writer_fd, fcntl.LOCK_EX)
        self._writer_locked = True

    def _unlock_writers(self) -> None:
        if self._writer_locked:
            self._writer_locked = False
            fcntl.flock(self._writer_fd, fcntl.LOCK_UN)

    def _start_transaction_under_autocommit(self):
        # Django's `atomic` on SQLite: BEGIN (IMMEDIATE, see settings) in autocommit mode.
        self._lock_writers()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._unlock_writers()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._unlock_writers()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._unlock_writers()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._unlock_writers()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None
