"""Audit events in words: the action's label and its details as readable text."""

from __future__ import annotations

from django import template

from campaigns import campaign_history

register = template.Library()


@register.filter
def audit_action(action: str) -> str:
    """A known campaign action's label; any other action's code, dots as spaces."""
    label = campaign_history.EVENT_LABELS.get(action)
    return str(label) if label else action.replace(".", " ").replace("_", " ")


@register.filter
def audit_text(event) -> str:
    """The event's details in words: described per campaign action, else `key: value`
    pairs (lists joined), never raw JSON."""
    text = campaign_history.describe_details(event.action, event.details or {})
    if text:
        return text
    parts = []
    for key, value in sorted((event.details or {}).items()):
        if isinstance(value, list | tuple):
            value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)
