"""URLs of the push console's pages, one include per area (campaigns/views/)."""

from django.urls import include, path

urlpatterns = [
    path("", include("campaigns.views.dashboard")),
    path("campaigns/", include("campaigns.views.test_send")),
    path("campaigns/", include("campaigns.views.confirm")),
    path("campaigns/", include("campaigns.views.campaigns")),
    path("templates/", include("campaigns.views.templates")),
    path("lists/", include("campaigns.views.target_lists")),
    path("credentials/", include("campaigns.views.credentials")),
    path("audit/", include("campaigns.views.audit_trail")),
    path("history/", include("campaigns.views.history")),
]
