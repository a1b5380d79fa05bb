from django.urls import include, path

urlpatterns = [
    path("", include("campaigns.views.dashboard")),
    path("campaigns/", include("campaigns.views.campaigns")),
    path("account/", include("campaigns.views.account")),
    path("templates/", include("campaigns.views.templates")),
    path("lists/", include("campaigns.views.target_lists")),
]
