"""campaigns.mpaas (strategy, wire, vocabulary): PushTemplate parameters, StrategyContent
and their rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import django
import pytest
from django.conf import settings
from django.utils import translation
from django.utils.functional import Promise
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.mpaas.strategy import (
    Limits,
    PushSpec,
    StrategyError,
    check,
    parse_placeholders,
    render,
    validate,
    validate_template_name,
)
from campaigns.mpaas.vocabulary import (
    HARMONYOS_CATEGORIES,
    HMS_CATEGORIES,
    NOTIFY_LEVELS,
    RESERVED_EXTENDED_KEYS,
    RESULT_CODES,
    DeliveryType,
    humanize_seconds,
)
from campaigns.mpaas.wire import strategy_content, strategy_content_json, template_params

if not settings.configured:  # standalone run, before the project's settings exist
    settings.configure(USE_I18N=True)
    django.setup()

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
# 10:00 on 2025-11-27 in Shanghai: today + 180 days is 2026-05-26.
NOW = datetime(2025, 11, 27, 2, 0, tzinfo=UTC)
TODAY = date(2025, 11, 27)
BASE = PushSpec(
    task_name="Double 11 recall",
    app_id="ONEX570DA89211721",
    workspace_id="default",
    template_name="tpl_1",
    template_placeholders=("name", "金额"),
    template_values={"name": "张三", "金额": "100"},
    delivery_type=3,
    expired_seconds=300,
)
LOOP = dict(
    strategy_type=2,
    loop_start_date=date(2025, 11, 28),
    loop_end_date=date(2025, 12, 1),
    loop_circle_type=1,
    loop_time=time(9, 45, 11),
)
WEEKLY = {**LOOP, "loop_circle_type": 2, "loop_circle_values": (1, 3)}
MONTHLY = {**LOOP, "loop_circle_type": 3, "loop_circle_values": (1, 31)}
SMS = dict(
    sms_strategy=2,
    sms_sign_name="阿里云",
    sms_template_code="SMS_216070269",
    sms_template_param={"code": "1234"},
)
LATER = NOW + timedelta(hours=1)
# Hypothesis keeps no example database: nothing is written into the project tree.
PROPERTY = hypothesis_settings(database=None, deadline=None, max_examples=100)


def spec(*presets: dict, **changes) -> PushSpec:
    """BASE with the presets (LOOP, WEEKLY, SMS...) and then the changes applied."""
    merged = {key: value for preset in presets for key, value in preset.items()}
    return replace(BASE, **{**merged, **changes})


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


# -- validate: every rule fails with its own message on its own field ----------------------

FAILING = {
    "task name empty": ({"task_name": "  "}, "task_name", "Task name is required."),
    "task name too long": (
        {"task_name": "x" * 129},
        "task_name",
        "Task name may be at most 128 characters.",
    ),
    "app id empty": ({"app_id": ""}, "app_id", "App ID is required."),
    "workspace empty": ({"workspace_id": " "}, "workspace_id", "Workspace ID is required."),
    "template name empty": ({"template_name": ""}, "template_name", "Template name is required."),
    "template name comma": (
        {"template_name": "a,b"},
        "template_name",
        "Template name may not contain commas.",
    ),
    "template name full-width comma": (
        {"template_name": "模板，一"},
        "template_name",
        "Template name may not contain commas.",
    ),
    "template name padded": (
        {"template_name": " tpl_1"},
        "template_name",
        "Template name may not start or end with spaces.",
    ),
    "template name too long": (
        {"template_name": "t" * 129},
        "template_name",
        "Template name may be at most 128 characters (it has 129).",
    ),
    "template value missing": (
        {"template_values": {"name": "张三"}},
        "template_values",
        "Template values are missing for #金额#.",
    ),
    "template value unknown": (
        {"template_values": {**BASE.template_values, "coupon": "x"}},
        "template_values",
        "The template has no placeholders #coupon#; remove their values.",
    ),
    "delivery type 4": (
        {"delivery_type": 4},
        "delivery_type",
        "Delivery type must be one of 1, 2, 3, 5, 6, 7.",
    ),
    "expiry too short": (
        {"expired_seconds": 179},
        "expired_seconds",
        "Expiry must be between 3 minutes and 72 hours (180 to 259200 seconds).",
    ),
    "expiry too long": (
        {"expired_seconds": 259201},
        "expired_seconds",
        "Expiry must be between 3 minutes and 72 hours (180 to 259200 seconds).",
    ),
    "too many extended params": (
        {"extended_params": {f"k{i}": "v" for i in range(21)}},
        "extended_params",
        "At most 20 extended parameters are allowed (there are 21).",
    ),
    "reserved extended keys": (
        {"extended_params": {"sound": "a", "taskId": "1", "channel": "x"}},
        "extended_params",
        "Extended parameters may not use the reserved keys taskId, channel.",
    ),
    "reserved extended key in other case": (
        {"extended_params": {"NotifyType": "1"}},
        "extended_params",
        "Extended parameters may not use the reserved keys NotifyType.",
    ),
    "empty extended key": (
        {"extended_params": {" ": "x"}},
        "extended_params",
        "Extended parameter names may not be empty.",
    ),
    "sms without sign name": (
        {**SMS, "sms_sign_name": ""},
        "sms_sign_name",
        "SMS signature is required when the SMS supplement is on.",
    ),
    "sms without template code": (
        {**SMS, "sms_template_code": ""},
        "sms_template_code",
        "SMS template code is required when the SMS supplement is on.",
    ),
    "sms without template param": (
        {**SMS, "sms_template_param": {}},
        "sms_template_param",
        "SMS template parameters are required when the SMS supplement is on.",
    ),
    "sms template code shape": (
        {**SMS, "sms_template_code": "216070269"},
        "sms_template_code",
        "SMS template code must look like SMS_123456789.",
    ),
    "sms strategy negative": (
        {"sms_strategy": -1},
        "sms_strategy",
        "SMS strategy must be 0 (off) or a positive number.",
    ),
    "classification 2": (
        {"classification": "2"},
        "classification",
        "Classification must be 0 (operational) or 1 (system).",
    ),
    "notify type": (
        {"notify_type": "silent"},
        "notify_type",
        "Notify type must be “notify” or “transparent”.",
    ),
    "unknown vendor": (
        {"third_channel_category": {"meizu": "1"}},
        "third_channel_category",
        "Unknown vendor “meizu” in channel categories; "
        "use one of hms, harmonyos, honor, vivo, oppo, xiaomi.",
    ),
    "hms category 15": (
        {"third_channel_category": {"hms": "15"}},
        "third_channel_category",
        "The hms channel category must be one of 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14.",
    ),
    "harmonyos category 14": (
        {"third_channel_category": {"harmonyos": "14"}},
        "third_channel_category",
        "The harmonyos channel category must be one of 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13.",
    ),
    "vivo category not digits": (
        {"third_channel_category": {"vivo": "1a"}},
        "third_channel_category",
        "The vivo channel category must be digits.",
    ),
    "xiaomi category empty": (
        {"third_channel_category": {"xiaomi": ""}},
        "third_channel_category",
        "The xiaomi channel category must be digits.",
    ),
    "notify level vendor": (
        {"notify_level": {"vivo": "1"}},
        "notify_level",
        "Notify levels exist only for hms, oppo, not “vivo”.",
    ),
    "hms notify level 3": (
        {"notify_level": {"hms": "3"}},
        "notify_level",
        "The hms notify level must be one of 1, 2.",
    ),
    "oppo notify level 3": (
        {"notify_level": {"oppo": "3"}},
        "notify_level",
        "The oppo notify level must be one of 1, 2, 16.",
    ),
    "xiaomi channel id too long": (
        {"mi_channel_id": "m" * 65},
        "mi_channel_id",
        "Xiaomi channel ID may be at most 64 characters.",
    ),
    "activity event": (
        {"activity_event": "start"},
        "activity_event",
        "Live-activity event must be “update” or “end”.",
    ),
    "dismissal without end": (
        {"activity_event": "update", "dismissal_date": LATER},
        "dismissal_date",
        "A dismissal date applies only to the “end” live-activity event.",
    ),
    "dismissal in the past": (
        {"activity_event": "end", "dismissal_date": NOW},
        "dismissal_date",
        "Dismissal date must be in the future.",
    ),
    "dismissal naive": (
        {"activity_event": "end", "dismissal_date": datetime(2026, 1, 1)},
        "dismissal_date",
        "Dismissal date must include a time zone.",
    ),
    "content state without event": (
        {"activity_content_state": {"progress": 1}},
        "activity_content_state",
        "Live-activity content state needs a live-activity event.",
    ),
    "unknown time zone": (
        {"timezone": "Mars/Olympus"},
        "timezone",
        "Unknown time zone “Mars/Olympus”.",
    ),
    "strategy type 3": (
        {"strategy_type": 3},
        "strategy_type",
        "Strategy type must be 0 (immediate), 1 (fixed time) or 2 (loop).",
    ),
    "fixed without time": (
        {"strategy_type": 1},
        "fixed_time",
        "Send time is required for a fixed-time push.",
    ),
    "fixed naive": (
        {"strategy_type": 1, "fixed_time": datetime(2026, 1, 1)},
        "fixed_time",
        "Send time must include a time zone.",
    ),
    "fixed at now": (
        {"strategy_type": 1, "fixed_time": NOW},
        "fixed_time",
        "Send time must be in the future.",
    ),
    "fixed in the past": (
        {"strategy_type": 1, "fixed_time": NOW - timedelta(seconds=1)},
        "fixed_time",
        "Send time must be in the future.",
    ),
    "loop without start": (
        {**LOOP, "loop_start_date": None},
        "loop_start_date",
        "Start date is required for a loop push.",
    ),
    "loop without end": (
        {**LOOP, "loop_end_date": None},
        "loop_end_date",
        "End date is required for a loop push.",
    ),
    "loop without time": (
        {**LOOP, "loop_time": None},
        "loop_time",
        "Send time of day is required for a loop push.",
    ),
    "loop without circle type": (
        {**LOOP, "loop_circle_type": None},
        "loop_circle_type",
        "Repeat (daily, weekly or monthly) is required for a loop push.",
    ),
    "loop circle type 4": (
        {**LOOP, "loop_circle_type": 4},
        "loop_circle_type",
        "Repeat must be 1 (daily), 2 (weekly) or 3 (monthly).",
    ),
    "loop starts yesterday": (
        {**LOOP, "loop_start_date": TODAY - timedelta(days=1)},
        "loop_start_date",
        "The loop may not start before today (2025-11-27).",
    ),
    "loop ends before start": (
        {**LOOP, "loop_end_date": date(2025, 11, 27)},
        "loop_end_date",
        "The loop must end on or after its start date.",
    ),
    "loop ends after 180 days": (
        {**LOOP, "loop_end_date": date(2026, 5, 27)},
        "loop_end_date",
        "The loop may end at most 180 days after today (2026-05-26).",
    ),
    "daily with days": (
        {**LOOP, "loop_circle_values": (1,)},
        "loop_circle_values",
        "A daily loop takes no days; clear them.",
    ),
    "weekly without days": (
        {**WEEKLY, "loop_circle_values": ()},
        "loop_circle_values",
        "Choose at least one weekday for a weekly loop.",
    ),
    "weekly day 0": (
        {**WEEKLY, "loop_circle_values": (0, 1)},
        "loop_circle_values",
        "Weekly loop days must be between 1 (Monday) and 7 (Sunday).",
    ),
    "weekly day 8": (
        {**WEEKLY, "loop_circle_values": (8,)},
        "loop_circle_values",
        "Weekly loop days must be between 1 (Monday) and 7 (Sunday).",
    ),
    "weekly day as text": (
        {**WEEKLY, "loop_circle_values": ("1",)},
        "loop_circle_values",
        "Weekly loop days must be between 1 (Monday) and 7 (Sunday).",
    ),
    "weekly repeated day": (
        {**WEEKLY, "loop_circle_values": (3, 1, 3)},
        "loop_circle_values",
        "Loop days may not repeat: 3.",
    ),
    "monthly without days": (
        {**MONTHLY, "loop_circle_values": ()},
        "loop_circle_values",
        "Choose at least one day of the month for a monthly loop.",
    ),
    "monthly day 32": (
        {**MONTHLY, "loop_circle_values": (1, 32)},
        "loop_circle_values",
        "Monthly loop days must be between 1 and 31.",
    ),
    "monthly day 0": (
        {**MONTHLY, "loop_circle_values": (0,)},
        "loop_circle_values",
        "Monthly loop days must be between 1 and 31.",
    ),
}


@pytest.mark.parametrize(("changes", "field", "message"), FAILING.values(), ids=FAILING.keys())
def test_each_rule_refuses_with_its_message_on_its_field(changes, field, message):
    assert validate(spec(**changes), now=NOW) == {field: [message]}


PASSING = {
    "base": {},
    "task name of 128": {"task_name": "x" * 128},
    "template name of 128, Chinese": {"template_name": "模" * 128},
    "no placeholders, no values": {"template_placeholders": (), "template_values": {}},
    "empty value counts as given": {"template_values": {"name": "", "金额": "0"}},
    "delivery type 7": {"delivery_type": 7},
    "expiry lower bound": {"expired_seconds": 180},
    "expiry upper bound": {"expired_seconds": 259200},
    "20 extended params": {"extended_params": {f"k{i}": "v" for i in range(20)}},
    "meaningful extended params": {"extended_params": {"sound": "a", "mutable-content": "1"}},
    "sms complete": SMS,
    "sms off ignores its fields": {"sms_template_code": "nonsense", "sms_sign_name": ""},
    "classification 0": {"classification": "0"},
    "classification 1": {"classification": "1"},
    "notify": {"notify_type": "notify"},
    "transparent": {"notify_type": "transparent", "transparent_payload": {"k": "v"}},
    "categories at the edges": {
        "third_channel_category": {
            "hms": "14",
            "harmonyos": "13",
            "honor": "1",
            "vivo": "1",
            "oppo": "22",
            "xiaomi": "103",
        }
    },
    "notify levels": {"notify_level": {"hms": "2", "oppo": "16"}},
    "xiaomi channel id of 64": {"mi_channel_id": "m" * 64},
    "update with content state": {"activity_event": "update", "activity_content_state": {"a": 1}},
    "end with dismissal": {"activity_event": "end", "dismissal_date": LATER},
    "empty content state without event": {"activity_content_state": {}},
    "other time zone": {"timezone": "Europe/Berlin"},
    "fixed a second ahead": {"strategy_type": 1, "fixed_time": NOW + timedelta(seconds=1)},
    "immediate ignores stale schedule": {
        **WEEKLY,
        "strategy_type": 0,
        "fixed_time": NOW - timedelta(days=9),
        "loop_circle_values": (99,),
    },
    "fixed ignores loop fields": {
        **WEEKLY,
        "strategy_type": 1,
        "fixed_time": LATER,
        "loop_start_date": date(2000, 1, 1),
    },
    "loop ignores fixed time": {**LOOP, "fixed_time": NOW - timedelta(days=1)},
    "loop from today to today + 180": {
        **LOOP,
        "loop_start_date": TODAY,
        "loop_end_date": date(2026, 5, 26),
    },
    "loop of one day": {**LOOP, "loop_end_date": LOOP["loop_start_date"]},
    "weekly every day": {**WEEKLY, "loop_circle_values": (7, 6, 5, 4, 3, 2, 1)},
    "monthly every day": {**MONTHLY, "loop_circle_values": tuple(range(1, 32))},
}


@pytest.mark.parametrize("changes", PASSING.values(), ids=PASSING.keys())
def test_valid_specs_pass(changes):
    assert validate(spec(**changes), now=NOW) == {}


def test_errors_on_several_fields_are_all_reported():
    errors = validate(spec(task_name="", delivery_type=9, **{**SMS, "sms_sign_name": ""}), now=NOW)
    assert set(errors) == {"task_name", "delivery_type", "sms_sign_name"}


def test_sms_on_with_nothing_names_each_missing_field():
    errors = validate(spec(sms_strategy=2), now=NOW)
    assert set(errors) == {"sms_sign_name", "sms_template_code", "sms_template_param"}


def test_today_is_the_credentials_day():
    # 01:00 on Nov 28 in Shanghai is still Nov 27 (12:00) in New York.
    now = datetime(2025, 11, 27, 17, 0, tzinfo=UTC)
    loop = spec(LOOP, loop_start_date=date(2025, 11, 27))
    assert validate(loop, now=now) == {
        "loop_start_date": ["The loop may not start before today (2025-11-28)."]
    }
    assert validate(replace(loop, timezone="America/New_York"), now=now) == {}


def test_limits_change_the_bounds_and_the_wording():
    limits = Limits(expired_min=60, expired_max=3600, max_extended_params=1, loop_max_days=1)
    errors = validate(
        spec(LOOP, expired_seconds=3601, extended_params={"a": "1", "b": "2"}),
        now=NOW,
        limits=limits,
    )
    assert errors == {
        "expired_seconds": ["Expiry must be between 1 minute and 1 hour (60 to 3600 seconds)."],
        "extended_params": ["At most 1 extended parameter is allowed (there are 2)."],
        "loop_end_date": ["The loop may end at most 1 day after today (2025-11-28)."],
    }


def test_unknown_time_zone_skips_the_date_rules_that_need_it():
    errors = validate(spec(LOOP, timezone="Nowhere/Else"), now=NOW)
    assert errors == {"timezone": ["Unknown time zone “Nowhere/Else”."]}


def test_naive_now_is_a_programming_error():
    with pytest.raises(ValueError, match="aware"):
        validate(BASE, now=datetime(2025, 11, 27))


def test_check_raises_strategy_error_with_the_errors():
    check(BASE, now=NOW)
    with pytest.raises(StrategyError) as caught:
        check(spec(template_name="a,b", app_id=""), now=NOW)
    assert isinstance(caught.value, ValueError)
    assert caught.value.errors == {
        "app_id": ["App ID is required."],
        "template_name": ["Template name may not contain commas."],
    }
    assert "Template name may not contain commas." in str(caught.value)


def test_template_name_rules_collect_every_problem():
    assert validate_template_name("tpl_1") == []
    assert validate_template_name(" a,b" + "x" * 130) == [
        "Template name may not start or end with spaces.",
        "Template name may not contain commas.",
        "Template name may be at most 128 characters (it has 134).",
    ]


# -- StrategyContent ------------------------------------------------------------------------


def test_immediate_has_no_strategy_content():
    assert strategy_content(BASE) is None
    assert strategy_content_json(BASE) is None


def test_fixed_time_in_milliseconds_truncated_to_the_second():
    fixed = spec(strategy_type=1, fixed_time=datetime(2025, 12, 1, 10, 30, 45, 999999, SHANGHAI))
    assert strategy_content(fixed) == {"fixedTime": 1764556245000}
    assert strategy_content_json(fixed) == '{"fixedTime":1764556245000}'


def test_daily_loop_from_shanghai_midnights_without_circle_value():
    assert strategy_content_json(spec(LOOP)) == (
        '{"startTime":1764259200000,"endTime":1764518400000,"circleType":1,"time":"09:45:11"}'
    )


def test_weekly_loop_sorts_its_days():
    content = strategy_content(spec(WEEKLY, loop_circle_values=(7, 1, 3)))
    assert content == {
        "startTime": 1764259200000,
        "endTime": 1764518400000,
        "circleType": 2,
        "circleValue": [1, 3, 7],
        "time": "09:45:11",
    }


def test_monthly_loop_sorts_its_days():
    content = strategy_content(spec(MONTHLY, loop_circle_values=(31, 1, 15)))
    assert content["circleType"] == 3
    assert content["circleValue"] == [1, 15, 31]


def test_loop_midnights_across_new_york_dst_change():
    # Clocks go forward at 02:00 on 2026-03-08: the two midnights are 47 hours apart.
    loop = spec(
        LOOP,
        timezone="America/New_York",
        loop_start_date=date(2026, 3, 7),
        loop_end_date=date(2026, 3, 9),
    )
    content = strategy_content(loop)
    assert content["startTime"] == 1772859600000  # 2026-03-07T05:00:00Z
    assert content["endTime"] == 1773028800000  # 2026-03-09T04:00:00Z
    assert content["endTime"] - content["startTime"] == 47 * 3600 * 1000
    assert validate(loop, now=datetime(2026, 3, 1, tzinfo=UTC)) == {}


def test_incomplete_schedule_cannot_become_strategy_content():
    with pytest.raises(StrategyError) as caught:
        strategy_content(spec(LOOP, loop_time=None, loop_circle_type=9))
    assert set(caught.value.errors) == {"loop_time", "loop_circle_type"}
    with pytest.raises(StrategyError) as caught:
        strategy_content(spec(strategy_type=1))
    assert set(caught.value.errors) == {"fixed_time"}


# -- template_params ------------------------------------------------------------------------

FULL = spec(
    WEEKLY,
    SMS,
    loop_end_date=date(2025, 12, 31),
    classification="0",
    notify_type="notify",
    third_channel_category={"hms": "9", "vivo": "1"},
    notify_level={"oppo": "2"},
    mi_channel_id="marketing",
    extended_params={"sound": "default", "big_text": "大字"},
    activity_event="end",
    activity_content_state={"进度": 80, "stage": "运输中"},
    dismissal_date=datetime(2025, 11, 27, 14, 0, 30, 500000, tzinfo=UTC),
)


def test_full_spec_wire_parameters():
    assert validate(FULL, now=NOW) == {}
    targets = {"user1024": "1578807462788", "user2048": "1578807462789"}
    assert template_params(FULL, targets) == {
        "AppId": "ONEX570DA89211721",
        "WorkspaceId": "default",
        "TaskName": "Double 11 recall",
        "TemplateName": "tpl_1",
        "TemplateKeyValue": '{"name":"张三","金额":"100"}',
        "DeliveryType": "3",
        "TargetMsgkey": '{"user1024":"1578807462788","user2048":"1578807462789"}',
        "ExpiredSeconds": "300",
        "ExtendedParams": '{"sound":"default","big_text":"大字"}',
        "NotifyType": "notify",
        "Classification": "0",
        "StrategyType": "2",
        "StrategyContent": '{"startTime":1764259200000,"endTime":1767110400000,'
        '"circleType":2,"circleValue":[1,3],"time":"09:45:11"}',
        "SmsStrategy": "2",
        "SmsSignName": "阿里云",
        "SmsTemplateCode": "SMS_216070269",
        "SmsTemplateParam": '{"code":"1234"}',
        "ThirdChannelCategory": '{"hms":"9","vivo":"1"}',
        "NotifyLevel": '{"oppo":"2"}',
        "MiChannelId": "marketing",
        "ActivityEvent": "end",
        "ActivityContentState": '{"进度":80,"stage":"运输中"}',
        "DismissalDate": "1764252030",
    }


def test_minimal_spec_sends_only_the_required_parameters():
    assert template_params(BASE, {"user1024": "k1"}) == {
        "AppId": "ONEX570DA89211721",
        "WorkspaceId": "default",
        "TaskName": "Double 11 recall",
        "TemplateName": "tpl_1",
        "TemplateKeyValue": '{"name":"张三","金额":"100"}',
        "DeliveryType": "3",
        "TargetMsgkey": '{"user1024":"k1"}',
        "ExpiredSeconds": "300",
    }


def test_empty_optionals_are_omitted():
    params = template_params(
        spec(
            sms_sign_name="阿里云",
            sms_template_code="SMS_1",
            sms_template_param={"a": "b"},
            fixed_time=LATER,
            activity_content_state={},
            template_placeholders=(),
            template_values={},
        ),
        {"u": "k"},
    )
    assert "StrategyType" not in params and "StrategyContent" not in params
    assert not {k for k in params if k.startswith("Sms")}
    assert "ActivityContentState" not in params
    assert params["TemplateKeyValue"] == "{}"


def test_fixed_time_parameters():
    params = template_params(spec(strategy_type=1, fixed_time=LATER), {"u": "k"})
    assert params["StrategyType"] == "1"
    assert params["StrategyContent"] == f'{{"fixedTime":{int(LATER.timestamp()) * 1000}}}'


def test_ten_targets_fit_in_one_call():
    targets = {f"user{i}": f"key{i}" for i in range(10)}
    assert json.loads(template_params(BASE, targets)["TargetMsgkey"]) == targets


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (
            {f"user{i}": f"key{i}" for i in range(11)},
            "At most 10 targets may go in one call (there are 11).",
        ),
        ({}, "At least one target is required."),
        ({"a": "k", "b": "k", "c": "j", "d": "j"}, "Message keys must be unique: k, j repeat."),
        ({"": "k"}, "Target IDs may not be empty."),
        ({"u": " "}, "Message keys may not be empty."),
    ],
    ids=["11 targets", "no target", "duplicate msgKeys", "empty target id", "empty msgKey"],
)
def test_template_params_refuses_bad_targets(targets, message):
    with pytest.raises(StrategyError) as caught:
        template_params(BASE, targets)
    assert caught.value.errors == {"": [message]}


def test_template_params_obeys_the_target_limit():
    with pytest.raises(StrategyError):
        template_params(BASE, {"a": "1", "b": "2", "c": "3"}, limits=Limits(max_targets=2))


# -- placeholders, rendering, wording -------------------------------------------------------


def test_placeholders_in_order_of_first_appearance_unique():
    assert parse_placeholders(
        "Hi #name#, ## is not one, nor is #two words#",
        "#金额# yuan for #name#",
        "app://open?id=#order_id1#",
        "",
    ) == ("name", "金额", "order_id1")


def test_render_fills_known_and_keeps_unknown_placeholders():
    assert render("Hi #name#, #金额# yuan, #gift#", {"name": "张三", "金额": "100"}) == (
        "Hi 张三, 100 yuan, #gift#"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (180, "3 minutes"),
        (300, "5 minutes"),
        (3600, "1 hour"),
        (86400, "24 hours"),
        (259200, "72 hours"),
        (93600, "1 day 2 hours"),
        (604800, "7 days"),
        (90061, "1 day 1 hour 1 minute 1 second"),
    ],
)
def test_humanize_seconds(seconds, text):
    assert humanize_seconds(seconds) == text


def test_tables_for_the_ui():
    # Labels are lazy so the UI shows them in the reader's language.
    assert all(isinstance(label, Promise) for label in DeliveryType.labels)
    assert DeliveryType.values == [1, 2, 3, 5, 6, 7]
    assert str(DeliveryType(7).label) == "HarmonyOS device"
    assert len(HMS_CATEGORIES) == 14 and str(HMS_CATEGORIES["9"]).startswith("FINANCE")
    assert str(HMS_CATEGORIES["13"]).startswith("PLAY_VOICE")
    assert len(HARMONYOS_CATEGORIES) == 13 and str(HARMONYOS_CATEGORIES["12"]).startswith(
        "CUSTOMER_SERVICE"
    )
    assert str(HARMONYOS_CATEGORIES["13"]).startswith("MARKETING")
    assert list(NOTIFY_LEVELS["oppo"]) == ["1", "2", "16"]
    assert "taskId" in RESERVED_EXTENDED_KEYS and "sound" not in RESERVED_EXTENDED_KEYS
    assert [code for code, info in RESULT_CODES.items() if info.retryable] == ["8011"]
    assert str(RESULT_CODES["3022"].meaning) == "Template does not exist"


# -- properties -----------------------------------------------------------------------------

ZONES = st.sampled_from(["Asia/Shanghai", "America/New_York"])
NOWS = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC))


@st.composite
def valid_loops(draw):
    zone, now = draw(ZONES), draw(NOWS)
    today = now.astimezone(ZoneInfo(zone)).date()
    start = draw(st.integers(0, 180))
    end = draw(st.integers(start, 180))
    kind = draw(st.sampled_from([1, 2, 3]))
    top = {1: 0, 2: 7, 3: 31}[kind]
    days = draw(st.lists(st.integers(1, top), min_size=1, unique=True)) if top else []
    loop = spec(
        timezone=zone,
        strategy_type=2,
        loop_start_date=today + timedelta(days=start),
        loop_end_date=today + timedelta(days=end),
        loop_circle_type=kind,
        loop_circle_values=tuple(days),
        loop_time=draw(st.times()),
    )
    return loop, now


@PROPERTY
@given(valid_loops())
def test_any_loop_within_bounds_validates_and_round_trips(case):
    loop, now = case
    assert validate(loop, now=now) == {}
    content = json.loads(strategy_content_json(loop))
    zone = ZoneInfo(loop.timezone)
    start = datetime.fromtimestamp(content["startTime"] / 1000, zone)
    end = datetime.fromtimestamp(content["endTime"] / 1000, zone)
    assert content["startTime"] <= content["endTime"]
    assert start.time() == end.time() == time(0)
    assert (start.date(), end.date()) == (loop.loop_start_date, loop.loop_end_date)
    assert content["circleType"] == loop.loop_circle_type
    assert content.get("circleValue", []) == sorted(loop.loop_circle_values)
    assert content["time"] == loop.loop_time.strftime("%H:%M:%S")


@PROPERTY
@given(valid_loops(), st.integers(181, 3000))
def test_any_end_beyond_the_horizon_is_refused(case, days_ahead):
    loop, now = case
    today = now.astimezone(ZoneInfo(loop.timezone)).date()
    errors = validate(replace(loop, loop_end_date=today + timedelta(days=days_ahead)), now=now)
    last = (today + timedelta(days=180)).isoformat()
    assert errors == {"loop_end_date": [f"The loop may end at most 180 days after today ({last})."]}


@PROPERTY
@given(valid_loops(), st.integers(1, 400))
def test_any_start_before_today_is_refused(case, days_back):
    loop, now = case
    today = now.astimezone(ZoneInfo(loop.timezone)).date()
    errors = validate(replace(loop, loop_start_date=today - timedelta(days=days_back)), now=now)
    assert errors == {"loop_start_date": [f"The loop may not start before today ({today})."]}


@PROPERTY
@given(
    valid_loops(),
    st.integers().filter(lambda day: not 1 <= day <= 7),
    st.lists(st.integers(1, 7), max_size=6, unique=True),
)
def test_any_weekly_day_outside_1_to_7_is_refused(case, bad, good):
    loop, now = case
    weekly = replace(loop, loop_circle_type=2, loop_circle_values=(*good, bad))
    assert validate(weekly, now=now) == {
        "loop_circle_values": ["Weekly loop days must be between 1 (Monday) and 7 (Sunday)."]
    }


@PROPERTY
@given(valid_loops(), st.integers().filter(lambda day: not 1 <= day <= 31))
def test_any_monthly_day_outside_1_to_31_is_refused(case, bad):
    loop, now = case
    monthly = replace(loop, loop_circle_type=3, loop_circle_values=(15, bad))
    assert validate(monthly, now=now) == {
        "loop_circle_values": ["Monthly loop days must be between 1 and 31."]
    }


@PROPERTY
@given(NOWS, st.timedeltas(timedelta(0), timedelta(days=3650)))
def test_fixed_time_at_or_before_now_is_refused(now, back):
    fixed = spec(strategy_type=1, fixed_time=now - back)
    assert validate(fixed, now=now) == {"fixed_time": ["Send time must be in the future."]}


@PROPERTY
@given(NOWS, st.timedeltas(timedelta(microseconds=1), timedelta(days=3650)), ZONES)
def test_fixed_time_after_now_is_accepted_and_sent_to_the_second(now, ahead, zone):
    moment = (now + ahead).astimezone(ZoneInfo(zone))
    fixed = spec(strategy_type=1, fixed_time=moment, timezone=zone)
    assert validate(fixed, now=now) == {}
    sent = json.loads(strategy_content_json(fixed))["fixedTime"]
    assert sent % 1000 == 0
    assert sent <= moment.timestamp() * 1000 < sent + 1000


NAMES = st.text(alphabet="ab_1金额名", min_size=1, max_size=4)
FILLER = st.text(alphabet="xy {}:/?=,，。 ", max_size=5)


@PROPERTY
@given(st.lists(st.tuples(FILLER, NAMES), max_size=8), FILLER)
def test_placeholders_parse_and_render_round_trip(pieces, tail):
    text = "".join(f"{filler}#{name}#" for filler, name in pieces) + tail
    names = tuple(dict.fromkeys(name for _, name in pieces))
    assert parse_placeholders(text) == names
    values = {name: f"<{name}>" for name in names}
    rendered = render(text, values)
    assert "#" not in rendered
    assert rendered == "".join(f"{filler}<{name}>" for filler, name in pieces) + tail


# -- the model's extra PushTemplate fields (transparent message, display, vendor template) --

TRANSPARENT = {"notify_type": "transparent", "transparent_payload": {"cmd": "sync", "n": 1}}

EXTRA_FAILING = {
    "transparent without payload": (
        {"notify_type": "transparent"},
        "transparent_payload",
        "A transparent message needs a payload (a JSON object).",
    ),
    "payload without transparent": (
        {"notify_type": "notify", "transparent_payload": {"a": 1}},
        "transparent_payload",
        "A payload is sent only with the notify type “transparent”.",
    ),
    "payload not an object": (
        {"notify_type": "transparent", "transparent_payload": ["a"]},
        "transparent_payload",
        "The payload must be a JSON object.",
    ),
    "payload too big": (
        {"notify_type": "transparent", "transparent_payload": {"a": "x" * 4090}},
        "transparent_payload",
        "The payload may be at most 4096 bytes as JSON (it has 4098).",
    ),
    "urgency unknown": (
        {**TRANSPARENT, "transparent_urgency": "URGENT"},
        "transparent_urgency",
        "Urgency must be one of HIGH, NORMAL.",
    ),
    "urgency without transparent": (
        {"transparent_urgency": "HIGH"},
        "transparent_urgency",
        "Urgency is sent only with the notify type “transparent”.",
    ),
    "push action unknown": (
        {"push_action": 2},
        "push_action",
        "Tap action must be 0 (web URL) or 1 (in-app page).",
    ),
    "silent unknown": ({"silent": 3}, "silent", "Silent must be 0 (shown) or 1 (silent)."),
    "channel id too long": (
        {"channel_id": "c" * 65},
        "channel_id",
        "Channel ID may be at most 64 characters.",
    ),
    "channel id with a space": (
        {"channel_id": "a b"},
        "channel_id",
        "Channel ID may not contain spaces.",
    ),
    "vendor template not an object": (
        {"vendor_template": ["x"]},
        "vendor_template",
        "The vendor template must be a JSON object.",
    ),
    "vendor template too big": (
        {"vendor_template": {"a": "x" * 4090}},
        "vendor_template",
        "The vendor template may be at most 4096 bytes as JSON (it has 4098).",
    ),
}


@pytest.mark.parametrize("changes, field, message", EXTRA_FAILING.values(), ids=EXTRA_FAILING)
def test_each_extra_field_rule_fails_on_its_own_field(changes, field, message):
    assert validate(spec(**changes), now=NOW) == {field: [message]}


def test_payload_size_counts_utf8_bytes_and_follows_the_limit():
    chinese = {**TRANSPARENT, "transparent_payload": {"t": "推" * 100}}  # 300 bytes + 8
    assert validate(spec(**chinese), now=NOW) == {}
    small = Limits(transparent_payload_max_bytes=300)
    assert set(validate(spec(**chinese), now=NOW, limits=small)) == {"transparent_payload"}


EXTRA_PASSING = {
    "transparent with payload and urgency": {**TRANSPARENT, "transparent_urgency": "HIGH"},
    "web url, shown": {"push_action": 0, "silent": 0},
    "in-app page, silent": {"push_action": 1, "silent": 1},
    "channel id of 64": {"channel_id": "c" * 64},
    "vendor template": {"vendor_template": {"hms": {"category": "MARKETING"}}},
    "empty vendor template is none": {"vendor_template": {}},
}


@pytest.mark.parametrize("changes", EXTRA_PASSING.values(), ids=EXTRA_PASSING)
def test_extra_fields_pass_when_they_follow_the_rules(changes):
    assert validate(spec(**changes), now=NOW) == {}


def test_extra_fields_go_out_under_the_official_models_wire_names():
    from alibabacloud_mpaas20201028.models import PushTemplateRequest

    full = spec(
        **TRANSPARENT,
        transparent_urgency="NORMAL",
        push_action=1,
        silent=0,
        channel_id="promo",
        vendor_template={"xiaomi": {"channel": "x"}},
    )
    params = template_params(full, {"u1": "k1"})
    assert params["TransparentMessagePayload"] == '{"cmd":"sync","n":1}'
    assert params["TransparentMessageUrgency"] == "NORMAL"
    assert params["PushAction"] == "1"
    assert params["Silent"] == "0"  # zero is a value, not "unset"
    assert params["ChannelId"] == "promo"
    assert json.loads(params["VendorTemplate"]) == {"xiaomi": {"channel": "x"}}
    model = PushTemplateRequest().from_map(params)
    assert model.to_map() == params, "a name the official request model does not know"


def test_unset_extra_fields_and_transparent_fields_of_a_notify_push_are_left_out():
    params = template_params(spec(), {"u1": "k1"})
    extra = {"TransparentMessagePayload", "TransparentMessageUrgency", "PushAction", "Silent"}
    assert not extra & set(params) and not {"ChannelId", "VendorTemplate"} & set(params)
