"""The signed-in user's own settings: the console language."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import path
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.models import UserPreference


@require_POST
def language_set(request):
    """Remember the chosen language for this user (and this browser), then go back."""
    language = request.POST.get("language", "")
    target = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    response = HttpResponseRedirect(target)
    if language in dict(settings.LANGUAGES):
        UserPreference.objects.update_or_create(user=request.user, defaults={"language": language})
        translation.activate(language)
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax")
    return response


urlpatterns = [
    path("language/", language_set, name="language-set"),
]
