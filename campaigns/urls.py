"""URLs of the push console's pages, one include per area (campaigns/views/)."""

from django.urls import include, path

urlpatterns = [
    path("", include("campaigns.views.dashboard")),
    # before campaigns.views.campaigns, whose <pk>/<action>/ would take these paths
    path("campaigns/", include("campaigns.views.recall")),
    path("campaigns/", include("campaigns.views.test_send")),
    path("campaigns/", include("campaigns.views.confirm")),
    path("campaigns/", include("campaigns.views.campaigns")),
    path("templates/", include("campaigns.views.templates")),
    path("lists/", include("campaigns.views.target_lists")),
    path("credentials/", include("campaigns.views.credentials")),
    path("audit/", include("campaigns.views.audit_trail")),
    path("approvals/", include("campaigns.views.approvals")),
    path("history/", include("campaigns.views.history")),
    path("", include("campaigns.views.statistics")),
]
