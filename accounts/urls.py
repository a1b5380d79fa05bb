"""URLs about people: sign-in and sign-out, the user's own settings, two-factor, users."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.debug import sensitive_post_parameters

from accounts.ip_limit import limited_by_address

urlpatterns = [
    path(
        "login/",
        sensitive_post_parameters("password")(
            limited_by_address(auth_views.LoginView.as_view(template_name="accounts/login.html"))
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", include("accounts.views.preferences")),
    path("account/", include("accounts.views.passwords")),
    path("account/2fa/", include("accounts.views.two_factor")),
    path("users/", include("accounts.views.users")),
]
