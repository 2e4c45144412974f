"""Console routes: the page and its assets."""

from __future__ import annotations

from django.urls import path

from console import views

urlpatterns = [
    path("console", views.console),
    path("console/assets/<str:name>", views.asset),
]
