"""Accessibility tags for every page: the error summary after a failed submit, and the
"Error:" prefix of the page title, both found from the bound forms in the context."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms, template
from django.utils.translation import gettext

register = template.Library()


@dataclass(frozen=True)
class FormError:
    """One line of the error summary: the message, the field's label, and the id of the
    input it links to ("" for an error that belongs to no visible field)."""

    message: str
    label: str = ""
    target_id: str = ""


def forms_with_errors(context) -> list[forms.BaseForm]:
    """The bound forms of the page that failed validation, in context order, each once."""
    found: dict[int, forms.BaseForm] = {}
    for value in context.flatten().values():
        if isinstance(value, forms.BaseForm) and value.is_bound and value.errors:
            found.setdefault(id(value), value)
    return list(found.values())


def _target_id(bound_field) -> str:
    # A radio or checkbox group has no id for its label: link to its first option.
    return bound_field.id_for_label or (f"{bound_field.auto_id}_0" if bound_field.auto_id else "")


def summary_lines(form: forms.BaseForm) -> list[FormError]:
    """The form's errors in the order of its fields, non-field errors first."""
    lines = [FormError(str(message)) for message in form.non_field_errors()]
    for bound_field in form:
        for message in bound_field.errors:
            if bound_field.is_hidden:
                lines.append(FormError(str(message)))
            else:
                lines.append(
                    FormError(str(message), str(bound_field.label), _target_id(bound_field))
                )
    return lines


@register.inclusion_tag("_error_summary.html", takes_context=True)
def error_summary(context) -> dict:
    """A focusable box at the top of the page listing every error, each linked to its
    field (console.js moves focus to it when the page loads)."""
    lines = [line for form in forms_with_errors(context) for line in summary_lines(form)]
    return {"lines": lines}


@register.simple_tag(takes_context=True)
def error_title_prefix(context) -> str:
    """ "Error: " when a form on the page failed validation, so the title says so first."""
    return gettext("Error: ") if forms_with_errors(context) else ""
