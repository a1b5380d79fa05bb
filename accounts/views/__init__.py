"""Pages about people, one module per area; accounts/urls.py includes each module's
`urlpatterns` under the area's prefix."""
