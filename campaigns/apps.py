"""The campaigns app's configuration."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Push campaigns")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pushconsole import checks  # noqa: F401 - registers the deployment checks
