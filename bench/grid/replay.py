#!/usr/bin/env python3
"""Replays a clip of concatenated JPEGs (ffmpeg `-f mjpeg` output) to stdout as MJPEG at a
fixed rate, forever: the camera for bench/grid.sh's `exec:` streams. Paced on the monotonic
clock (a late frame is sent at once and the schedule restarts, never a burst); starts at a
given frame so that cameras replaying the same clip are not in step.

Usage: replay.py CLIP FPS [START_FRAME]
"""
import sys
import time


def frames(data):
    """Splits at each end-of-image marker: baseline JPEG entropy data never holds FF D9
    (a data FF is always followed by 00), and ffmpeg writes no thumbnails."""
    out, start = [], 0
    while True:
        end = data.find(b"\xff\xd9", start)
        if end < 0:
            return out
        out.append(data[start:end + 2])
        start = end + 2


def main():
    clip, fps = sys.argv[1], float(sys.argv[2])
    with open(clip, "rb") as f:
        pics = frames(f.read())
    if not pics:
        sys.exit(f"replay.py: no JPEG in {clip}")
    i = int(sys.argv[3]) % len(pics) if len(sys.argv) > 3 else 0
    out, interval = sys.stdout.buffer, 1.0 / fps
    due = time.monotonic()
    while True:
        out.write(pics[i])
        out.flush()
        i = (i + 1) % len(pics)
        due += interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            due = now


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
