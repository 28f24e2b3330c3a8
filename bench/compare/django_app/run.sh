#!/usr/bin/env bash
# Runs the Django + OpenCV comparison peer: uvicorn, one worker, on 127.0.0.1:PORT,
# serving GET /stream as multipart/x-mixed-replace; boundary=frame, each viewer with its
# own OpenCV capture of RTSP_URL (see views.py).
#
#   bench/compare/django_app/run.sh PORT RTSP_URL
#   bench/compare/django_app/run.sh 8091 rtsp://127.0.0.1:8554/h264
#
# Creates or updates bench/compare/.venv first (setup_venv.sh; a no-op when current),
# then execs uvicorn, so this script's PID is the server's: stop it with SIGTERM.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PORT RTSP_URL" >&2
  exit 2
fi
port=$1
rtsp_url=$2

here=$(cd "$(dirname "$0")" && pwd)
python=$("$here/../setup_venv.sh")

export COMPARE_RTSP_URL=$rtsp_url
# RTSP over TCP (interleaved), as camhub's RTSP source uses. FFmpeg's other defaults are
# kept, as in the tutorials: opening probes about 2 s of stream, and OpenCV opens one
# capture at a time per process, so viewer N gets its first frame after about 2*N s.
# A caller may set its own options (e.g. "rtsp_transport;tcp|analyzeduration;500000").
export OPENCV_FFMPEG_CAPTURE_OPTIONS=${OPENCV_FFMPEG_CAPTURE_OPTIONS:-rtsp_transport;tcp}
export DJANGO_SETTINGS_MODULE=django_app.settings
# One process whatever the environment says (uvicorn reads WEB_CONCURRENCY).
unset WEB_CONCURRENCY

# Plain uvicorn (h11, asyncio loop); Django has no lifespan support, so it is off. On
# SIGTERM uvicorn waits for open responses to finish, which an endless stream never does:
# the graceful-shutdown timeout makes it exit within about 2 s even with viewers attached.
exec "$python" -m uvicorn django_app.asgi:application \
  --app-dir "$here/.." --host 127.0.0.1 --port "$port" --workers 1 \
  --http h11 --loop asyncio --lifespan off --timeout-graceful-shutdown 2 \
  --no-access-log --log-level warning
