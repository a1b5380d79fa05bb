from django.urls import include, path

urlpatterns = [
    path("", include("campaigns.views.dashboard")),
    path("campaigns/", include("campaigns.views.campaigns")),
    path("account/", include("campaigns.views.account")),
    path("account/2fa/", include("campaigns.views.two_factor")),
    path("templates/", include("campaigns.views.templates")),
    path("lists/", include("campaigns.views.target_lists")),
    path("credentials/", include("campaigns.views.credentials")),
    path("users/", include("campaigns.views.users")),
    path("audit/", include("campaigns.views.audit_trail")),
    path("history/", include("campaigns.views.history")),
]
