"""The view camhub replaces: every request opens its own OpenCV capture of the RTSP feed,
decodes each H.264 frame, encodes it again as a JPEG and sends it as one part of a
multipart/x-mixed-replace response, as the common Django + OpenCV tutorials do.

Faithful to that design, made correct under ASGI:
- The body is an async generator. A plain sync generator does not stream under ASGI:
  Django warns and consumes the whole iterator in a thread before sending anything, which
  for an endless camera feed means the client never gets a byte.
- Every blocking OpenCV call (open, read, encode) goes through sync_to_async so the event
  loop keeps serving the other viewers meanwhile.
- Frames are read as fast as the camera delivers them (15 fps); nothing sleeps.
- The capture is released when the client goes away (Django cancels the response task on
  http.disconnect), which ends the RTSP session and FFmpeg's threads.
"""

from concurrent.futures import ThreadPoolExecutor

import cv2
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

# camhub's default JPEG quality, so both encode the same amount of work per frame.
JPEG_QUALITY = 80
ENCODE_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
BOUNDARY = "frame"


def _open_capture(url):
    """Opens the RTSP URL with FFmpeg (TCP transport: run.sh sets
    OPENCV_FFMPEG_CAPTURE_OPTIONS); None when it cannot be opened."""
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


async def stream(request):
    # One worker thread per viewer, as a threaded WSGI server gives the tutorial's sync
    # view. thread_sensitive=False is required: with the default (True) every viewer's
    # blocking cap.read() would run on Django's single shared sync thread, one after the
    # other, so N viewers would share one thread's frame rate. Passing an executor (and
    # not just thread_sensitive=False) matters too: otherwise the calls go to the event
    # loop's default pool, which has only min(32, CPUs + 4) threads (6 on a 2-core
    # machine), and each read holds a pool thread until the next frame arrives, so once
    # viewers outnumber the threads their reads queue behind one another. One thread per
    # capture also keeps its calls in order, so release() never runs while a read is in
    # flight (releasing from the event loop while a pool thread was reading segfaulted
    # uvicorn when 10 viewers disconnected at once).
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture")

    def blocking(func):
        return sync_to_async(func, thread_sensitive=False, executor=reader)

    # Opening takes about 2 s (FFmpeg probes the stream) and OpenCV lets only one capture
    # open at a time per process, so simultaneous viewers get their first frame 2 s apart.
    try:
        cap = await blocking(_open_capture)(settings.RTSP_URL)
    except BaseException:
        # Client gone while opening: the queued open still finishes; its capture is
        # dropped (and so released) with the thread's result.
        reader.shutdown(wait=False)
        raise
    if cap is None:
        reader.shutdown(wait=False)
        return HttpResponse("cannot open the camera\n", status=502, content_type="text/plain")

    response = StreamingHttpResponse(
        _jpeg_parts(cap, blocking, reader),
        content_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
    )
    response["Cache-Control"] = "no-store"
    return response


async def _jpeg_parts(cap, blocking, reader):
    """Yields one multipart part per frame until the camera ends or the client leaves."""
    try:
        while True:
            ok, frame = await blocking(cap.read)()
            if not ok:
                # Stream ended or camera gone: end the response, as the tutorials do.
                break
            # CPU-bound (about as long as the read's decode), so off the event loop too.
            ok, jpeg = await blocking(cv2.imencode)(".jpg", frame, ENCODE_PARAMS)
            if not ok:
                continue
            yield (
                b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                % (BOUNDARY.encode(), len(jpeg))
                + jpeg.tobytes()
                + b"\r\n"
            )
    finally:
        # Runs on disconnect too: Django cancels the task, which raises CancelledError at
        # the await above (or, if it was parked at the yield, closes the generator).
        # Without awaiting: the release is queued behind any read still in flight, then the
        # thread exits.
        reader.submit(cap.release)
        reader.shutdown(wait=False)
