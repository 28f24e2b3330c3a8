#!/usr/bin/python3
"""The comparison bench's camera: an RTSP server whose every frame carries a wall-clock
barcode, so a client can measure source-to-viewer latency from the picture alone.

Usage: rtsp_clock.py --port PORT

Mounts rtsp://127.0.0.1:PORT/h264: 640x480@15 H.264 (x264enc tune=zerolatency
speed-preset=ultrafast key-int-max=15, rtph264pay config-interval=1), one shared pipeline
for every client (peers that open one RTSP session per viewer, like the Django one, would
otherwise make this server run one x264 per viewer and skew the machine).

Each frame is built here in Python (appsrc, I420) and stamped with time.time() just before
it is pushed to the encoder. The barcode is three rows of 40 blocks of 16x16 px at the top
of the picture (aligned to H.264 macroblocks and JPEG MCUs so neither codec smears one
block into the next); black (Y=16) is 0, white (Y=235) is 1, MSB first:
  row 0: capture time in unix milliseconds mod 2^40
  row 1: the same 40 bits inverted (a decoder rejects the frame unless every pair differs)
  row 2: 8-bit marker 0xB2, 24-bit frame number, 8-bit checksum (sum of the 8 bytes of
         time and frame number, mod 256)
`decode_barcode` in loadgen.py reads it back from the centre of each block.
The rest of the picture is a static textured background with a moving square, so
encoders see motion and JPEGs have a realistic size.

Keeps one RTSP client of its own (rtspsrc ! fakesink) connected for its whole life, so the
shared media is prepared once, before any peer connects, and never torn down between bench
configurations: several clients PLAYing a shared media while it prepares can crash Debian
12's gst-rtsp-server 1.22 (see tests/peers/rtsp_server.py).

Prints "ready rtsp://127.0.0.1:PORT/h264" once that client receives frames; exits cleanly
on SIGTERM or SIGINT. Run with Debian's /usr/bin/python3 (it has gi).
"""

import argparse
import random
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

WIDTH = 640
HEIGHT = 480
FPS = 15
BLOCK_PX = 16
BITS_PER_ROW = WIDTH // BLOCK_PX  # 40
BLACK_Y = 16
WHITE_Y = 235
MARKER = 0xB2
TIME_MODULUS_MS = 1 << 40
SQUARE_PX = 96

PIPELINE = (
    "( appsrc name=clocksrc is-live=true format=time do-timestamp=true block=false"
    f" caps=video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1"
    " max-buffers=2 leaky-type=downstream"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15"
    " ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def barcode_rows(time_ms, frame_no):
    """The three barcode rows' bit lists (see the module doc)."""
    time_bits = [(time_ms >> (39 - i)) & 1 for i in range(40)]
    inverted = [1 - b for b in time_bits]
    frame_no &= 0xFFFFFF
    payload = time_ms.to_bytes(5, "big") + frame_no.to_bytes(3, "big")
    check = sum(payload) & 0xFF
    row2_value = (MARKER << 32) | (frame_no << 8) | check
    row2 = [(row2_value >> (39 - i)) & 1 for i in range(40)]
    return [time_bits, inverted, row2]


def make_background():
    """A static Y plane with texture (gradients and 32 px tiles of varying grey), kept
    away from the barcode band, and static U/V planes with a colour gradient."""
    rng = random.Random(7)
    tiles_x, tiles_y = WIDTH // 32, HEIGHT // 32
    tile_grey = [[rng.randrange(60, 200) for _ in range(tiles_x)] for _ in range(tiles_y)]
    y_plane = bytearray(WIDTH * HEIGHT)
    for y in range(HEIGHT):
        row = bytearray(WIDTH)
        for x in range(WIDTH):
            base = tile_grey[y // 32][x // 32]
            ripple = abs((x * 3 + y * 5) % 48 - 24) - 12  # a soft diagonal ripple
            row[x] = max(BLACK_Y, min(WHITE_Y, base + ripple))
        y_plane[y * WIDTH : (y + 1) * WIDTH] = row
    # Neutral chroma behind the barcode (a grey band), a colour gradient elsewhere.
    cw, ch = WIDTH // 2, HEIGHT // 2
    band_rows = 3 * BLOCK_PX // 2
    u_plane = bytes(
        128 if y < band_rows else 64 + (x * 128) // cw for y in range(ch) for x in range(cw)
    )
    v_plane = bytes(
        128 if y < band_rows else 64 + (y * 128) // ch for y in range(ch) for _ in range(cw)
    )
    return y_plane, u_plane + v_plane


class Clock:
    """Builds and pushes one frame every 1/FPS s into the shared media's appsrc."""

    def __init__(self):
        self.appsrc = None
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.background_y, self.chroma = make_background()
        self.black_block = bytes([BLACK_Y]) * BLOCK_PX
        self.white_block = bytes([WHITE_Y]) * BLOCK_PX
        self.square_row = bytes([WHITE_Y - 20]) * SQUARE_PX

    def set_appsrc(self, appsrc):
        with self.lock:
            self.appsrc = appsrc

    def frame(self, frame_no):
        """One I420 frame, stamped with the wall clock right now."""
        y_plane = bytearray(self.background_y)
        # The moving square bounces across the picture below the barcode band.
        span_x = WIDTH - SQUARE_PX
        span_y = HEIGHT - SQUARE_PX - 64
        pos_x = abs((frame_no * 7) % (2 * span_x) - span_x)
        pos_y = 64 + abs((frame_no * 5) % (2 * span_y) - span_y)
        for y in range(pos_y, pos_y + SQUARE_PX):
            start = y * WIDTH + pos_x
            y_plane[start : start + SQUARE_PX] = self.square_row
        time_ms = int(time.time() * 1000) % TIME_MODULUS_MS
        for row_index, bits in enumerate(barcode_rows(time_ms, frame_no)):
            row = b"".join(self.white_block if b else self.black_block for b in bits)
            for y in range(row_index * BLOCK_PX, (row_index + 1) * BLOCK_PX):
                y_plane[y * WIDTH : (y + 1) * WIDTH] = row
        return bytes(y_plane) + self.chroma

    def run(self):
        frame_no = 0
        period_secs = 1.0 / FPS
        next_at = time.monotonic()
        while not self.stop.is_set():
            with self.lock:
                appsrc = self.appsrc
            if appsrc is not None:
                appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(self.frame(frame_no)))
                frame_no += 1
            next_at += period_secs
            delay_secs = next_at - time.monotonic()
            if delay_secs < -1.0:
                # Far behind (machine stalled): restart the cadence instead of bursting.
                next_at = time.monotonic()
            elif delay_secs > 0:
                self.stop.wait(delay_secs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    Gst.init(None)
    clock = Clock()

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)

    def on_media_configure(_factory, media):
        clock.set_appsrc(media.get_element().get_child_by_name("clocksrc"))

    factory.connect("media-configure", on_media_configure)
    server.get_mount_points().add_factory("/h264", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        sys.exit(1)

    url = f"rtsp://127.0.0.1:{args.port}/h264"
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)

    producer = threading.Thread(target=clock.run, name="clock", daemon=True)
    producer.start()

    # The keep-alive client: prepares the shared media and keeps it playing.
    keepalive = Gst.parse_launch(
        f"rtspsrc location={url} latency=0 protocols=tcp ! fakesink name=sink sync=false"
        " signal-handoffs=true"
    )
    first_frame = threading.Event()
    keepalive.get_by_name("sink").connect("handoff", lambda *_: first_frame.set())
    keepalive.set_state(Gst.State.PLAYING)

    def announce_when_ready(started_at=time.monotonic()):
        if first_frame.is_set():
            print(f"ready {url}", flush=True)
            return False
        if time.monotonic() - started_at > 15:
            print("rtsp_clock: keep-alive client got no frame in 15 s", file=sys.stderr)
            loop.quit()
            return False
        return True

    GLib.timeout_add(50, announce_when_ready)
    loop.run()

    clock.stop.set()
    keepalive.set_state(Gst.State.NULL)
    producer.join(timeout=2)
    if not first_frame.is_set():
        sys.exit(1)


if __name__ == "__main__":
    main()
