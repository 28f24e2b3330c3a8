"""Django settings for the comparison peer: one streaming view, no database, no apps.

As small as `django-admin startproject` allows once the parts a camera stream does not use
(ORM, sessions, auth, admin, templates, static files) are left out. No middleware: a
startproject default would run once per request, not per frame, so it would not change the
numbers.
"""

import os
import secrets

# Nothing is signed (no sessions, no CSRF), but Django refuses to start without a key.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

ROOT_URLCONF = "django_app.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True

# run.sh sets this; the view reads it once per request.
RTSP_URL = os.environ.get("COMPARE_RTSP_URL", "")
