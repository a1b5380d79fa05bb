"""campaigns.mpaas.vocabulary: one table decides what a ResultCode means and whether to retry."""

from __future__ import annotations

import django
import pytest
from django.conf import settings
from django.utils import translation

from campaigns.mpaas.vocabulary import (
    NOTIFY_LEVELS,
    RESULT_CODES,
    THIRD_CHANNEL_CATEGORIES,
    CircleType,
    StrategyType,
    Vendor,
    is_retryable,
    is_retryable_gateway,
    is_success,
    result_label,
)

if not settings.configured:  # standalone run, before the project's settings exist
    settings.configure(USE_I18N=True)
    django.setup()


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("3022", "Template does not exist"),
        ("8011", "Flow control: throttled; back off and retry"),
        ("OK", "Accepted"),
        ("100", "Accepted"),
        ("", ""),
        ("9999", ""),
    ],
)
def test_result_label_reads_the_table(code, label):
    with translation.override("en"):
        assert result_label(code) == label


def test_result_label_is_translated():
    with translation.override("zh-hans"):
        assert result_label("OK") == "已受理"
        assert result_label("3022") == "模板不存在"


def test_success_codes():
    assert all(is_success(code) for code in ("OK", "100", "SUCCESS"))
    assert not any(is_success(code) for code in ("", "3022", "8011", "ok"))


def test_only_codes_marked_retryable_are_retried():
    assert is_retryable("8011")
    assert not is_retryable("3022")
    assert not is_retryable("unknown-code")
    assert [code for code in RESULT_CODES if is_retryable(code)] == ["8011"]


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("Throttling.User", 400, True),
        ("ServiceUnavailable", 503, True),
        ("Anything", 502, True),
        ("SignatureDoesNotMatch", 400, False),
        ("InvalidAccessKeyId.NotFound", 404, False),
        ("Forbidden.RAM", None, False),
    ],
)
def test_gateway_errors_retry_on_throttling_and_5xx(code, status, retryable):
    assert is_retryable_gateway(code, status) is retryable


def test_vendor_tables_are_keyed_by_vendor_codes():
    assert list(THIRD_CHANNEL_CATEGORIES) == Vendor.values
    assert set(NOTIFY_LEVELS) <= set(Vendor.values)
    assert all(type(vendor) is str for vendor in (*THIRD_CHANNEL_CATEGORIES, *NOTIFY_LEVELS))


def test_model_choices_keep_their_database_values():
    assert StrategyType.values == [0, 1, 2]
    assert CircleType.values == [1, 2, 3]
