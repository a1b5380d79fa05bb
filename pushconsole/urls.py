"""The project's URLs: the console apps, the admin and the RQ dashboard."""

from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from django.urls.resolvers import URLPattern
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from accounts.roles import admin_only
from pushconsole import health, metrics


def rq_dashboard_view(view):
    """django-rq's dashboard lets any staff user clear queues: Admins only here. Its
    pages carry inline scripts (select-all, clickable rows), allowed on them alone."""
    return admin_only(csp_update({"script-src": ["'unsafe-inline'"]})(view))


rq_dashboard = get_admin_urlpatterns(view_wrapper=rq_dashboard_view) + [
    URLPattern(p.pattern, rq_dashboard_view(p.callback), p.default_args, p.name)
    for p in get_api_urlpatterns()  # stats.json: its API-token access is not used here
]


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("rq/", include((rq_dashboard, "django_rq"))),
    path("", include("accounts.urls")),
    path("", include("campaigns.urls")),
]

handler500 = "pushconsole.errors.server_error"
