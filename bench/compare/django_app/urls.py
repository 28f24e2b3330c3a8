"""URL routes of the comparison peer: GET /stream, the MJPEG feed."""

from django.urls import path

from . import views

urlpatterns = [
    path("stream", views.stream),
]
