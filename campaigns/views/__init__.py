"""Console pages, one module per area. Each module ends with its own `urlpatterns`,
included by campaigns/urls.py under the area's prefix."""
