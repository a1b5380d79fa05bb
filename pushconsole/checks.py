"""System checks of a deployment: hashed static files collected before pages are served."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


def static_manifest_missing() -> bool:
    """True when the production profile's hashed static files were never collected
    (every page would fail to name its style sheet)."""
    backend = settings.STORAGES["staticfiles"]["BACKEND"]
    if "Manifest" not in backend:
        return False
    return not (settings.STATIC_ROOT / "staticfiles.json").exists()


@register(Tags.staticfiles, deploy=True)
def check_static_collected(app_configs, **kwargs):
    if not static_manifest_missing():
        return []
    return [
        Error(
            f"No static files manifest in STATIC_ROOT ({settings.STATIC_ROOT}): run "
            "`manage.py collectstatic --noinput` before serving pages.",
            hint="docs/DEPLOY.md, First start and upgrades",
            id="pushconsole.E001",
        )
    ]
