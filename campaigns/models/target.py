"""Target lists: named lists of target IDs of one delivery type."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from campaigns.mpaas.vocabulary import DeliveryType


class TargetList(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    delivery_type = models.PositiveSmallIntegerField(
        _("delivery type"), choices=DeliveryType.choices, default=DeliveryType.USER_ID
    )
    description = models.CharField(_("description"), max_length=300, blank=True)
    # Maintained by the importer, so that showing a list never counts its rows.
    target_count = models.PositiveIntegerField(_("targets"), default=0, editable=False)
    # Names of the columns a CSV import carried besides the target ID, in file order
    # (their values are kept per target, for per-person template values).
    value_columns = models.JSONField(_("value columns"), default=list, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("target list")
        verbose_name_plural = _("target lists")

    def __str__(self) -> str:
        return self.name


class Target(models.Model):
    # No index of its own: the unique (target_list, target_id) constraint and
    # target_list_walk_idx both lead with target_list, and a third index slowed imports.
    target_list = models.ForeignKey(
        TargetList, on_delete=models.CASCADE, related_name="targets", db_index=False
    )
    target_id = models.CharField(_("target ID"), max_length=200)
    # The row's other columns (column name -> text), when the import carried any.
    values = models.JSONField(_("values"), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["target_list", "target_id"], name="target_unique_in_list"
            )
        ]
        # Planning walks a list in primary-key order.
        indexes = [models.Index(fields=["target_list", "id"], name="target_list_walk_idx")]
        verbose_name = _("target")
        verbose_name_plural = _("targets")

    def __str__(self) -> str:
        return self.target_id
