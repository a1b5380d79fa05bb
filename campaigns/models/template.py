"""Message templates: mirrors of templates created in the mPaaS console."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from campaigns.mpaas import strategy


class MessageTemplate(models.Model):
    app_id = models.CharField(
        _("AppId"), max_length=64, help_text=_("The mPaaS app the template was created in.")
    )
    name = models.CharField(
        _("template name"),
        max_length=128,
        help_text=_("Exactly as created in the mPaaS console; may not contain commas."),
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body"), max_length=2000)
    uri = models.CharField(_("URI"), max_length=1000, blank=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["app_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["app_id", "name"], name="template_name_unique_per_app")
        ]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return self.name

    def placeholders(self) -> tuple[str, ...]:
        """The `#name#` placeholders of title, body and URI, in order of appearance."""
        return strategy.parse_placeholders(self.title, self.body, self.uri)

    def preview(self, values: Mapping[str, str]) -> dict[str, str]:
        return {
            "title": strategy.render(self.title, values),
            "body": strategy.render(self.body, values),
            "uri": strategy.render(self.uri, values),
        }

    def app_error(self, credential) -> str | None:
        """Why this template cannot be sent with `credential`, or None: a template
        exists in one mPaaS app only (its AppId must be the credential's)."""
        if credential is None or self.app_id == credential.app_id:
            return None
        return _(
            "Template “%(name)s” belongs to app %(template_app)s, but the credential "
            "sends for app %(app)s. Choose a template of app %(app)s."
        ) % {"name": self.name, "template_app": self.app_id, "app": credential.app_id}

    def clean(self) -> None:
        errors = strategy.validate_template_name(self.name)
        if errors:
            raise ValidationError({"name": errors})
