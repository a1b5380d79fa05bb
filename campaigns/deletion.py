"""Deleting a console object: audited in the same transaction, refused while in use."""

from __future__ import annotations

from django.db import models, transaction
from django.db.models import ProtectedError

from campaigns import audit


def delete_unless_used(obj: models.Model, action: str, *, request=None, details=None) -> bool:
    """Audit and delete `obj` in one transaction (the audit row first, while the object
    still has its id). Returns False, changing nothing, when a protected reference (a
    campaign using it) stops the delete."""
    try:
        with transaction.atomic():
            audit.record(action, obj=obj, request=request, details=details or {})
            obj.delete()
    except ProtectedError:
        return False
    return True
