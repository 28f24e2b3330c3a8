#!/usr/bin/python3
"""A real RTSP server for camhub's tests: GStreamer's RTSP server (GstRtspServer via gi).

Usage: rtsp_server.py --port PORT [--auth none|basic|digest] [--user U] [--password P]
                      [--size WxH] [--address ADDR]
                      [--key-int N] [--bitrate KBPS] [--pattern NAME]

Mounts on 127.0.0.1:PORT:
  /h264   640x480@15 H.264 (x264, zerolatency, keyframe every 15 frames)
  /mjpeg  640x480@15 JPEG (RTP payload 26, RFC 2435)
  /h265   640x480@15 H.265 (x265), which camhub must refuse with a clear reason
With --auth basic|digest every mount needs the user name and password. --size sets the
picture size of every mount (default 640x480), e.g. 1280x720 for a camera's main stream.

For the instant-start tests and bench/join.sh (issue #12); the defaults stay as above:
  --key-int N     H.264/H.265 keyframe exactly every N frames (key-int-max, no extra
                  keyframes at scene cuts), e.g. 150 = every 10 s at 15 fps
  --bitrate KBPS  the encoder's target bitrate (x264's and x265's own default otherwise)
  --pattern NAME  videotestsrc pattern (default ball; snow is noise that does not
                  compress, for a stream as heavy as --bitrate allows)
Each client gets its own pipeline, so its keyframes come every N frames from its PLAY.

--address listens there instead of 127.0.0.1 (e.g. a test network namespace's address;
the ready line then names it).

Prints "ready rtsp://127.0.0.1:PORT" on stdout once listening; exits cleanly on SIGTERM
or SIGINT. The port is chosen by the caller so a test can kill the server and start a new
one on the same port.
Run with Debian's /usr/bin/python3 (it has gi).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# timeoverlay (pango plugin, package gstreamer1.0-x) stamps the time on each picture;
# without it, the moving ball pattern still makes every frame different.
SOURCE = "videotestsrc is-live=true pattern={pattern} ! video/x-raw,format=I420,width={w},height={h},framerate=15/1"

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key_int}{extra}"
    " ! rtph264pay name=pay0 pt=96 config-interval=1",
    "mjpeg": "jpegenc ! rtpjpegpay name=pay0 pt=26",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={key_int}{extra}"
    " ! rtph265pay name=pay0 pt=96 config-interval=1",
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth", choices=["none", "basic", "digest"], default="none")
    parser.add_argument("--user", default="user")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--key-int", type=int, help="frames between keyframes (default 15)")
    parser.add_argument("--bitrate", type=int, help="encoder bitrate, kbit/s")
    parser.add_argument("--pattern", default="ball", help="videotestsrc pattern")
    parser.add_argument("--size", default="640x480", help="WxH of every mount's picture")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    args = parser.parse_args()
    extra = ""
    if args.key_int is not None:
        # Exactly every N frames: with snow, every frame would be a scene cut.
        extra += " option-string=scenecut=0"
    if args.bitrate is not None:
        extra += f" bitrate={args.bitrate}"
    encoders = {
        name: launch.format(key_int=args.key_int or 15, extra=extra)
        for name, launch in ENCODERS.items()
    }
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: want WxH, got {args.size!r}")
    source = SOURCE.format(w=width, h=height, pattern=args.pattern)

    Gst.init(None)
    overlay = " ! timeoverlay" if Gst.ElementFactory.find("timeoverlay") else ""

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    if args.auth != "none":
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        if args.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)

    mounts = server.get_mount_points()
    for name, encoder in encoders.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f"( {source}{overlay} ! {encoder} )")
        # Not shared: each client gets its own pipeline. With a shared media, several
        # clients PLAYing while it prepares crash the server on Debian 12's
        # gst-rtsp-server 1.22 ("gst_rtsp_media_get_rates: assertion failed: (FALSE)"),
        # which the auth test (three streams on one mount) hit now and then.
        factory.set_shared(False)
        if args.auth != "none":
            role = Gst.Structure.from_string(
                "user, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )[0]
            factory.add_role_from_structure(role)
        mounts.add_factory(f"/{name}", factory)

    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr)
        sys.exit(1)

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://{args.address}:{args.port}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
