"""The Django + OpenCV comparison peer: the design camhub replaces (see views.py)."""
