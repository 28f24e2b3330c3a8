#!/usr/bin/env python3
"""scripts/vm/mjpeg_parts.py — split a captured multipart/x-mixed-replace MJPEG body.

Usage: mjpeg_parts.py CAPTURE OUTDIR
Writes each complete JPEG part as OUTDIR/part-NNN.jpg (by Content-Length when a part has
one, else up to the next boundary) and prints: <parts> <distinct parts>.
A truncated last part (the capture was cut by curl's time limit) is ignored.
"""
import hashlib
import os
import re
import sys

data = open(sys.argv[1], "rb").read()
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
parts, digests, pos = [], set(), 0
header_re = re.compile(rb"\r?\n\r?\n")
while True:
    # Each part: headers (with Content-Type: image/jpeg), blank line, body.
    m = re.compile(rb"content-type:\s*image/jpeg", re.I).search(data, pos)
    if not m:
        break
    h_end = header_re.search(data, m.end())
    if not h_end:
        break
    headers = data[pos:h_end.start()]
    body_start = h_end.end()
    cl = re.search(rb"content-length:\s*(\d+)", headers, re.I)
    if cl:
        body_end = body_start + int(cl.group(1))
        if body_end > len(data):
            break
    else:
        nxt = data.find(b"\r\n--", body_start)
        if nxt < 0:
            break
        body_end = nxt
    body = data[body_start:body_end]
    if body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9":
        name = os.path.join(out, "part-%03d.jpg" % len(parts))
        open(name, "wb").write(body)
        parts.append(name)
        digests.add(hashlib.sha256(body).hexdigest())
    pos = body_end
print(len(parts), len(digests))
