"""Console pages. Views are thin: fetch with a permission check, bind a form, call one
domain function, audit, redirect."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import path

from campaigns.models import Campaign, Credential, MessageTemplate, TargetList


def home(request):
    return render(
        request,
        "campaigns/home.html",
        {
            "credentials": Credential.objects.all(),
            "templates": MessageTemplate.objects.all()[:20],
            "target_lists": TargetList.objects.all()[:20],
            "campaigns": Campaign.objects.select_related("credential")[:10],
        },
    )


urlpatterns = [
    path("", home, name="home"),
]
