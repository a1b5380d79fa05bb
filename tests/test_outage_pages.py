"""Pages during a database outage: a short styled 503, no traceback, logged once a while."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError, ProgrammingError, connection
from django.test import Client

from pushconsole import errors


def refuse(execute, sql, params, many, context):
    raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch):
    # so that the first refusal of each test is the one logged
    monkeypatch.setattr(errors, "throttle", errors.Throttle(errors.DB_ERROR_LOG_INTERVAL))


def test_pages_answer_a_styled_503_while_the_database_is_away(admin_user, caplog, settings):
    settings.DEBUG = False
    signed_in = Client(raise_request_exception=False)
    signed_in.force_login(admin_user)
    anonymous = Client(raise_request_exception=False)
    caplog.set_level(logging.INFO)
    with connection.execute_wrapper(refuse):
        responses = [
            signed_in.get("/login/"),
            signed_in.get("/"),
            signed_in.get("/campaigns/"),
            anonymous.post("/login/", {"username": "ada", "password": "x"}),
        ]

    for response in responses:
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        page = response.content.decode()
        assert "The database is unavailable; try again in a moment." in page
        assert "bootstrap.min.css" in page  # styled, not Django's bare text
        assert "Traceback" not in page and "OperationalError" not in page
    errors_logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors_logged) == 1, [r.getMessage() for r in errors_logged]
    assert "the database is unavailable" in errors_logged[0].getMessage()
    assert errors_logged[0].exc_info is None  # one line, no traceback


def test_the_503_page_speaks_chinese(db, settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False, headers={"accept-language": "zh-hans"})
    with connection.execute_wrapper(refuse):
        response = client.post("/login/", {"username": "ada", "password": "x"})
    assert response.status_code == 503
    assert "数据库" in response.content.decode()


def test_other_database_errors_still_answer_500(db, settings):
    settings.DEBUG = False

    def bug(execute, sql, params, many, context):
        raise ProgrammingError("column does not exist")

    with connection.execute_wrapper(bug):
        response = Client(raise_request_exception=False).post(
            "/login/", {"username": "ada", "password": "x"}
        )
    assert response.status_code == 500
    assert "database is unavailable" not in response.content.decode()
