from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.debug import sensitive_post_parameters

urlpatterns = [
    path(
        "login/",
        sensitive_post_parameters("password")(auth_views.LoginView.as_view()),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("campaigns.urls")),
]
