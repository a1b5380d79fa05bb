"""Per-request rules for a signed-in user: their language, the sliding idle timeout, no-store."""

from __future__ import annotations

import time

from django.conf import settings
from django.utils import translation
from django.utils.cache import patch_cache_control

from accounts.user_facts import facts_of


class UserLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # one statement with the roles and enrolment the later checks read
            language = facts_of(user).language
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


class SessionIdleMiddleware:
    """Slide the idle timeout without writing the session on every request.

    A signed-in user's session is saved again (with a fresh expiry, SESSION_COOKIE_AGE
    from now) at most once per SESSION_REFRESH_SECONDS. The idle timeout is then exact
    to within that interval, and a page that polls every second (the progress bar)
    only reads its session instead of queueing a write behind the workers'."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if session is not None and user is not None and user.is_authenticated:
            now = int(time.time())
            if now - session.get("_refreshed_at", 0) >= settings.SESSION_REFRESH_SECONDS:
                session["_refreshed_at"] = now  # marks the session modified: it is saved
        return response


class NoStoreMiddleware:
    """Every page a signed-in user gets (deliveries, targets, audit, exports) carries
    `Cache-Control: no-store`, so no browser or proxy cache keeps a copy."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, no_store=True, private=True)
        return response
