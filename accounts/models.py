"""Per-user preferences (the console language), remembered across browsers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES)

    class Meta:
        # The table campaigns created before this model moved here (issue 11).
        db_table = "campaigns_userpreference"

    def __str__(self) -> str:
        return f"{self.user} ({self.language})"
