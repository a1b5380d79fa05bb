"""Per-person template values: which placeholder reads which column of the target list,
and what a launch of such a campaign (sent with PushMultiple) needs first."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from campaigns import audit
from campaigns.conf import multiple_batch_size_error
from campaigns.models import Campaign, Target


class MappingError(ValueError):
    """The mapping cannot be saved; `errors` is keyed by placeholder ("" = whole)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(" ".join(m for ms in errors.values() for m in ms))


def set_columns(campaign: Campaign, columns: dict[str, str], user, *, request=None) -> None:
    """Save placeholder -> column for a draft (an empty column = the fixed value); the
    placeholders must be the template's and the columns the list's. Audited; bad input
    changes nothing."""
    placeholders = campaign.template.placeholders()
    known = list(campaign.target_list.value_columns or [])
    errors: dict[str, list[str]] = {}
    if not campaign.can_edit():
        errors[""] = [_("Only a draft campaign's values can be changed.")]
    for placeholder, column in columns.items():
        if placeholder not in placeholders:
            errors.setdefault("", []).append(
                _("The template has no placeholder “%(p)s”.") % {"p": placeholder}
            )
        elif column and column not in known:
            errors.setdefault(placeholder, []).append(
                _("The list “%(list)s” has no column “%(column)s”.")
                % {"list": campaign.target_list.name, "column": column}
            )
    if errors:
        raise MappingError(errors)
    mapping = {p: c for p, c in columns.items() if c}
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DRAFT).update(
            value_columns=mapping
        ):
            raise MappingError({"": [_("Only a draft campaign's values can be changed.")]})
        audit.record(
            "campaign.value_columns",
            actor=user,
            obj=campaign,
            request=request,
            details={"columns": mapping},
        )
    campaign.value_columns = mapping


def lacking(campaign: Campaign) -> dict[str, int]:
    """How many targets of the list have no (or an empty) value for each mapped
    placeholder."""
    counts = {placeholder: 0 for placeholder in campaign.value_columns}
    rows = Target.objects.filter(target_list=campaign.target_list).values_list("values", flat=True)
    for values in rows.iterator(chunk_size=5000):
        values = values or {}
        for placeholder, column in campaign.value_columns.items():
            if not str(values.get(column) or "").strip():
                counts[placeholder] += 1
    return {p: n for p, n in counts.items() if n}


def launch_errors(campaign: Campaign) -> dict[str, list[str]]:
    """Why a per-person campaign cannot be launched (nothing for any other)."""
    if not campaign.per_person():
        return {}
    errors: dict[str, list[str]] = {}
    if problem := multiple_batch_size_error():
        errors[""] = [problem]
    known = set(campaign.target_list.value_columns or [])
    for placeholder, column in campaign.value_columns.items():
        if column not in known:
            errors.setdefault("template_values", []).append(
                _("Placeholder “%(p)s” reads column “%(column)s”, which the list does not have.")
                % {"p": placeholder, "column": column}
            )
    for placeholder, count in lacking(campaign).items():
        errors.setdefault("template_values", []).append(
            ngettext(
                "%(count)d target has no value for “%(p)s” (column “%(column)s”).",
                "%(count)d targets have no value for “%(p)s” (column “%(column)s”).",
                count,
            )
            % {"count": count, "p": placeholder, "column": campaign.value_columns[placeholder]}
        )
    return errors
