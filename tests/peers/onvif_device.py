#!/usr/bin/python3
"""A fake ONVIF camera (device, Media and Media2 services) for camhub's tests (issue #14).

Stdlib only. Answers the SOAP calls camhub makes (../shared/research/onvif.md §2) with
bodies shaped like real cameras' replies and with their quirks:
  - replies echo the request's wsa:MessageID as their own MessageID and have no wsa:To;
  - service XAddrs, stream and snapshot URIs say 0.0.0.0 (or a host name that does not
    resolve, as a camera behind a NAT would), stream URIs carry &amp; in queries and
    whitespace around them, and one carries the camera's credentials;
  - odd namespace prefixes; --media 1 answers in SOAP 1.1 with Content-Length, --media 2
    in SOAP 1.2 with chunked bodies;
  - --media 1: no Media2 and no GetServices (ActionNotSupported): GetCapabilities only;
  - a profile without a video encoder (audio only), listed first, and the H.265 profile
    before the H.264 ones (index 0 is not the main stream).

Usage: onvif_device.py [--port 0] [--user U] [--password P]
                       [--auth none|wsse|digest|both] [--digest-algorithms SHA-256,MD5]
                       [--clock-offset SECONDS] [--reported-clock-offset SECONDS]
                       [--media 1|2] [--rtsp-port N]
                       [--main-size WxH] [--h265-only]
                       [--bind ADDR] [--sub-uri URI]

--auth wsse: WS-Security UsernameToken PasswordDigest checked for real (SHA-1 of nonce,
  Created and password; Created within 5 min of the camera's clock; a nonce used twice is
  refused); GetSystemDateAndTime, GetServices and GetCapabilities need none (PRE_AUTH)
  but a token that is sent is checked. Refusals: HTTP 400, SOAP fault ter:NotAuthorized.
--auth digest: HTTP Digest (RFC 7616, qop=auth, one challenge per algorithm in the order
  given) on every call but GetSystemDateAndTime; the SOAP header is ignored.
--auth both: Digest, and then the UsernameToken as well.
--clock-offset: the camera's clock runs this many seconds ahead of the machine's.
--reported-clock-offset: what GetSystemDateAndTime says instead (a camera that reports
  its local time as UTC but checks tokens against its real clock); default: the same.

--bind: the address to listen on (default 127.0.0.1), e.g. a network namespace's own;
  "::" listens on every IPv6 and IPv4 address.
--sub-uri: the sub profile's stream URI instead of the default one (e.g. the URL of a
  second RTSP server serving 640x360, for tests/discover_e2e.rs).

Prints "ready http://ADDR:PORT/onvif/device_service" once listening, then one line
per call: "call <prefix>:<Action> auth=<what was accepted> status=<HTTP status>" plus
call details (e.g. "protocol=RTSP"). Exits on SIGTERM/SIGINT.
"""

import argparse
import base64
import calendar
import hashlib
import http.server
import os
import re
import signal
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

ARGS = None
LOCK = threading.Lock()
SEEN_WS_NONCES = set()
DIGEST_NONCES = {}  # nonce -> last nc
REALM = "IP Camera(onvif-peer)"
OPAQUE = "5ccc069c403ebaf9f0171e9517f40e41"

DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
MEDIA1_NS = "http://www.onvif.org/ver10/media/wsdl"
MEDIA2_NS = "http://www.onvif.org/ver20/media/wsdl"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


def log(line):
    with LOCK:
        print(line, flush=True)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def ns_of(tag):
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def find(elem, name):
    for e in elem.iter():
        if local(e.tag) == name:
            return e
    return None


def text(elem, name):
    e = find(elem, name)
    return (e.text or "").strip() if e is not None else None


def camera_now():
    return time.time() + ARGS.clock_offset


# ---- profiles -------------------------------------------------------------------------


def profiles():
    """(token, name, codec, width, height, fps, uri) in the camera's order."""
    r = ARGS.rtsp_port
    mw, mh = (int(v) for v in ARGS.main_size.split("x"))
    m1 = ARGS.media == 1
    h265 = ("PROFILE_000" if m1 else "Profile_1", "hevcStream", "H265", 2560, 1440, 20,
            f"rtsp://admin:{ARGS.password}@0.0.0.0:{r}/h265")
    main = ("PROFILE_001" if m1 else "Profile_2", "mainStream", "H264", mw, mh, 15,
            f"rtsp://0.0.0.0:{r}/h264")
    sub = ("PROFILE_002" if m1 else "Profile_3", "subStream", "H264", 640, 360, 15,
           ARGS.sub_uri or
           f"rtsp://ipcam.invalid:{r}/Streaming/Channels/102?transportmode=unicast&profile=sub")
    if ARGS.h265_only:
        return [h265]
    return [h265, main, sub]


def media1_profiles():
    out = ['<ns1:Profiles token="AudioOnly" fixed="true"><ns2:Name>audio</ns2:Name>'
           '<ns2:AudioEncoderConfiguration token="a0"><ns2:Name>a0</ns2:Name>'
           '<ns2:UseCount>1</ns2:UseCount><ns2:Encoding>G711</ns2:Encoding>'
           '<ns2:Bitrate>64</ns2:Bitrate><ns2:SampleRate>8</ns2:SampleRate>'
           '</ns2:AudioEncoderConfiguration></ns1:Profiles>']
    for token, name, codec, w, h, fps, _ in profiles():
        out.append(
            f'<ns1:Profiles token="{token}" fixed="true"><ns2:Name>{name}</ns2:Name>'
            f'<ns2:VideoSourceConfiguration token="vsc"><ns2:Name>VideoSource_1</ns2:Name>'
            f'<ns2:UseCount>3</ns2:UseCount><ns2:SourceToken>vs</ns2:SourceToken>'
            f'<ns2:Bounds x="0" y="0" width="2560" height="1440"/></ns2:VideoSourceConfiguration>'
            f'<ns2:VideoEncoderConfiguration token="ve_{token}"><ns2:Name>VideoEncoder_{token}</ns2:Name>'
            f'<ns2:UseCount>1</ns2:UseCount><ns2:Encoding>{codec}</ns2:Encoding>'
            f'<ns2:Resolution><ns2:Width>{w}</ns2:Width><ns2:Height>{h}</ns2:Height></ns2:Resolution>'
            f'<ns2:Quality>5</ns2:Quality><ns2:RateControl><ns2:FrameRateLimit>{fps}</ns2:FrameRateLimit>'
            f'<ns2:EncodingInterval>1</ns2:EncodingInterval><ns2:BitrateLimit>4096</ns2:BitrateLimit>'
            f'</ns2:RateControl><ns2:H264><ns2:GovLength>50</ns2:GovLength>'
            f'<ns2:H264Profile>Main</ns2:H264Profile></ns2:H264>'
            f'<ns2:SessionTimeout>PT60S</ns2:SessionTimeout></ns2:VideoEncoderConfiguration>'
            f'</ns1:Profiles>')
    return "".join(out)


def media2_profiles():
    out = ['<tr2:Profiles token="AudioOnly" fixed="true"><tr2:Name>audio</tr2:Name>'
           '<tr2:Configurations><tr2:AudioEncoder token="a0"><tt:Name>a0</tt:Name>'
           '<tt:UseCount>1</tt:UseCount><tt:Encoding>PCMU</tt:Encoding><tt:Bitrate>64</tt:Bitrate>'
           '<tt:SampleRate>8</tt:SampleRate></tr2:AudioEncoder></tr2:Configurations></tr2:Profiles>']
    for token, name, codec, w, h, fps, _ in profiles():
        out.append(
            f'<tr2:Profiles token="{token}" fixed="true"><tr2:Name>{name}</tr2:Name>'
            f'<tr2:Configurations><tr2:VideoSource token="vsc"><tt:Name>VideoSource_1</tt:Name>'
            f'<tt:UseCount>3</tt:UseCount><tt:SourceToken>vs</tt:SourceToken>'
            f'<tt:Bounds x="0" y="0" width="2560" height="1440"/></tr2:VideoSource>'
            f'<tr2:VideoEncoder token="ve_{token}" GovLength="50" Profile="Main">'
            f'<tt:Name>VideoEncoder_{token}</tt:Name><tt:UseCount>1</tt:UseCount>'
            f'<tt:Encoding>{codec}</tt:Encoding><tt:Resolution><tt:Width>{w}</tt:Width>'
            f'<tt:Height>{h}</tt:Height></tt:Resolution><tt:RateControl ConstantBitRate="false">'
            f'<tt:FrameRateLimit>{fps:.6f}</tt:FrameRateLimit><tt:BitrateLimit>4096</tt:BitrateLimit>'
            f'</tt:RateControl><tt:Quality>5</tt:Quality></tr2:VideoEncoder>'
            f'</tr2:Configurations></tr2:Profiles>')
    return "".join(out)


def profile_uri(token):
    for p in profiles():
        if p[0] == token:
            return p[6]
    return None


# ---- envelopes ------------------------------------------------------------------------


def envelope(body, message_id, action):
    if ARGS.media == 1:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<env:Envelope xmlns:env="{SOAP11}" xmlns:ns0="{DEVICE_NS}" xmlns:ns1="{MEDIA1_NS}" '
            'xmlns:ns2="http://www.onvif.org/ver10/schema" '
            'xmlns:ns3="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:ter="http://www.onvif.org/ver10/error">'
            f'<env:Header><ns3:MessageID>{escape(message_id)}</ns3:MessageID>'
            f'<ns3:Action>{escape(action)}</ns3:Action></env:Header>'
            f'<env:Body>{body}</env:Body></env:Envelope>\n')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP12}" xmlns:tds="{DEVICE_NS}" '
        f'xmlns:trt="{MEDIA1_NS}" xmlns:tr2="{MEDIA2_NS}" '
        'xmlns:tt="http://www.onvif.org/ver10/schema" '
        'xmlns:wsa5="http://www.w3.org/2005/08/addressing" '
        'xmlns:ter="http://www.onvif.org/ver10/error">'
        f'<SOAP-ENV:Header><wsa5:MessageID>{escape(message_id)}</wsa5:MessageID>'
        f'<wsa5:Action>{escape(action)}</wsa5:Action></SOAP-ENV:Header>'
        f'<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>\n')


def fault(code, subcode, reason):
    if ARGS.media == 1:
        return (f'<env:Fault><faultcode>env:{"Client" if code == "Sender" else "Server"}'
                f'</faultcode><faultstring>{escape(reason)}</faultstring>'
                f'<detail><ter:{subcode}/></detail></env:Fault>')
    return (f'<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:{code}</SOAP-ENV:Value>'
            f'<SOAP-ENV:Subcode><SOAP-ENV:Value>ter:{subcode}</SOAP-ENV:Value></SOAP-ENV:Subcode>'
            f'</SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">{escape(reason)}'
            f'</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>')


def date_time_body():
    reported = ARGS.clock_offset if ARGS.reported_clock_offset is None else ARGS.reported_clock_offset
    t = time.gmtime(time.time() + reported)
    dt = (f'<tt:Time><tt:Hour>{t.tm_hour}</tt:Hour><tt:Minute>{t.tm_min}</tt:Minute>'
          f'<tt:Second>{t.tm_sec}</tt:Second></tt:Time><tt:Date><tt:Year>{t.tm_year}</tt:Year>'
          f'<tt:Month>{t.tm_mon}</tt:Month><tt:Day>{t.tm_mday}</tt:Day></tt:Date>')
    body = ('<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>'
            '<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>'
            '<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>'
            f'<tt:UTCDateTime>{dt}</tt:UTCDateTime><tt:LocalDateTime>{dt}</tt:LocalDateTime>'
            '</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>')
    return m1_prefixes(body)


def m1_prefixes(body):
    """The Media2-mode prefixes (tds, trt, tt) → the Media1 mode's (ns0, ns1, ns2)."""
    if ARGS.media != 1:
        return body
    return re.sub(r"(</?)(tds|trt|tt):", lambda m: m.group(1) + {"tds": "ns0", "trt": "ns1", "tt": "ns2"}[m.group(2)] + ":", body)


# ---- authentication -------------------------------------------------------------------


def check_ws(root):
    """None if no UsernameToken, True if valid, else the reason it is not."""
    token = find(root, "UsernameToken")
    if token is None:
        return None
    user = text(token, "Username")
    password_elem = find(token, "Password")
    nonce_b64 = text(token, "Nonce")
    created = text(token, "Created")
    if password_elem is None or not nonce_b64 or not created:
        return "incomplete token"
    if not (password_elem.get("Type") or "").endswith("#PasswordDigest"):
        return "not a PasswordDigest"
    try:
        nonce = base64.b64decode(nonce_b64, validate=True)
    except Exception:
        return "bad nonce"
    expected = base64.b64encode(
        hashlib.sha1(nonce + created.encode() + ARGS.password.encode()).digest()).decode()
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z", created)
    if not m:
        return "bad Created"
    created_t = calendar.timegm(tuple(int(v) for v in m.groups()[:6]) + (0, 0, 0))
    with LOCK:
        if nonce_b64 in SEEN_WS_NONCES:
            return "nonce replayed"
        SEEN_WS_NONCES.add(nonce_b64)
    if user != ARGS.user or (password_elem.text or "").strip() != expected:
        return "wrong digest"
    if abs(created_t - camera_now()) > 300:
        return f"Created {created} is {created_t - camera_now():+.0f} s off the camera's clock"
    return True


def digest_challenges():
    out = []
    for alg in ARGS.digest_algorithms.split(","):
        nonce = base64.b64encode(os.urandom(18)).decode()
        with LOCK:
            DIGEST_NONCES[nonce] = 0
        out.append(f'Digest realm="{REALM}", qop="auth", algorithm={alg}, '
                   f'nonce="{nonce}", opaque="{OPAQUE}", stale=FALSE')
    return out


def check_digest(header, method, path):
    """True, or the reason the Authorization header is refused."""
    if not header or not header.lower().startswith("digest "):
        return "no Digest credentials"
    params = {k.lower(): (q if q is not None and v.startswith('"') else v)
              for k, v, q in [(m.group(1), m.group(2), m.group(3))
                              for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|[^,\s]*)', header)]}
    params = {k: re.sub(r"\\(.)", r"\1", v) for k, v in params.items()}
    alg = params.get("algorithm", "MD5")
    if alg not in ARGS.digest_algorithms.split(","):
        return f"algorithm {alg} not offered"
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg]

    def H(s):
        return h(s.encode()).hexdigest()

    nonce = params.get("nonce", "")
    with LOCK:
        last_nc = DIGEST_NONCES.get(nonce)
    if last_nc is None:
        return "unknown nonce"
    if params.get("realm") != REALM or params.get("uri") != path or params.get("opaque") != OPAQUE:
        return "wrong realm, uri or opaque"
    if params.get("qop") != "auth":
        return "no qop=auth"
    try:
        nc = int(params.get("nc", ""), 16)
    except ValueError:
        return "bad nc"
    if nc <= last_nc:
        return "nc replayed"
    ha1 = H(f'{params.get("username")}:{REALM}:{ARGS.password}')
    ha2 = H(f"{method}:{path}")
    expected = H(f'{ha1}:{nonce}:{params["nc"]}:{params.get("cnonce", "")}:auth:{ha2}')
    if params.get("username") != ARGS.user or params.get("response") != expected:
        return "wrong response"
    with LOCK:
        DIGEST_NONCES[nonce] = nc
    return f"digest={alg}"


# ---- the server -----------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gSOAP/2.8"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type, extra=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Connection", "close")
        chunked = ARGS.media == 2 and status != 401
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if chunked:
            for i in range(0, len(data), 700):
                part = data[i:i + 700]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(data)
        self.close_connection = True

    def do_GET(self):
        self.send(404, "<html><body>Not Found</body></html>", "text/html")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1 << 20))
        path = self.path
        service = {"/onvif/device_service": "device", "/onvif/media_service": "media1",
                   "/onvif/Media": "media1", "/onvif/media2_service": "media2"}.get(path)
        if service == "media2" and ARGS.media == 1:
            service = None
        if service is None:
            log(f"call {path} status=404")
            self.send(404, "<html><body>Not Found</body></html>", "text/html")
            return
        try:
            root = ET.fromstring(raw)
            body = find(root, "Body")
            request = next(iter(body))
        except Exception:
            log("call unparsable status=400")
            self.send(400, "bad request", "text/plain")
            return
        action, ns = local(request.tag), ns_of(request.tag)
        prefix = {DEVICE_NS: "tds", MEDIA1_NS: "trt", MEDIA2_NS: "tr2"}.get(ns, "?")
        name = f"{prefix}:{action}"
        message_id = text(root, "MessageID") or "urn:uuid:6b0c1a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
        soap_action = f"{ns}/{action}Response"
        ctype = "text/xml; charset=utf-8" if ARGS.media == 1 else "application/soap+xml; charset=utf-8"

        def reply(status, content, details=""):
            log(f"call {name} auth={accepted} status={status}{details}")
            self.send(status, envelope(content, message_id, soap_action), ctype)

        # Authentication.
        pre_auth = action in ("GetServices", "GetCapabilities")
        accepted = "none"
        if action != "GetSystemDateAndTime" and ARGS.auth in ("digest", "both"):
            ok = check_digest(self.headers.get("Authorization"), "POST", path)
            if ok is not True and not str(ok).startswith("digest="):
                log(f"call {name} auth=refused({ok}) status=401")
                body401 = "<html><body><h1>401 Unauthorized</h1></body></html>"
                self.send(401, body401, "text/html",
                          [("WWW-Authenticate", c) for c in digest_challenges()])
                return
            accepted = ok
        if action != "GetSystemDateAndTime" and ARGS.auth in ("wsse", "both"):
            ws = check_ws(root)
            if ws is None and (pre_auth and ARGS.auth == "wsse"):
                pass
            elif ws is not True:
                accepted = f"refused({ws or 'no UsernameToken'})"
                reply(400, fault("Sender", "NotAuthorized", "Sender not Authorized"))
                return
            else:
                accepted = "wsse" if accepted == "none" else accepted + "+wsse"

        port = self.server.server_address[1]
        r = ARGS.rtsp_port
        if service == "device":
            if action == "GetSystemDateAndTime":
                reply(200, date_time_body())
            elif action == "GetServices" and ARGS.media == 2:
                def svc(ns_, path_, major, minor):
                    return (f'<tds:Service><tds:Namespace>{ns_}</tds:Namespace>'
                            f'<tds:XAddr>http://0.0.0.0:{port}{path_}</tds:XAddr>'
                            f'<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor>'
                            f'</tds:Version></tds:Service>')
                reply(200, '<tds:GetServicesResponse>'
                      + svc(DEVICE_NS, "/onvif/device_service", 17, 12)
                      + svc(MEDIA1_NS, "/onvif/media_service", 17, 12)
                      + svc(MEDIA2_NS, "/onvif/media2_service", 17, 12)
                      + svc("http://www.onvif.org/ver10/events/wsdl", "/onvif/event_service", 17, 12)
                      + '</tds:GetServicesResponse>')
            elif action == "GetCapabilities":
                reply(200, m1_prefixes(
                    '<tds:GetCapabilitiesResponse><tds:Capabilities>'
                    f'<tt:Device><tt:XAddr>http://ipcam.invalid:{port}/onvif/device_service</tt:XAddr></tt:Device>'
                    f'<tt:Events><tt:XAddr>http://ipcam.invalid:{port}/onvif/Events</tt:XAddr></tt:Events>'
                    f'<tt:Media><tt:XAddr>http://ipcam.invalid:{port}/onvif/Media</tt:XAddr>'
                    '<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>'
                    '<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>'
                    '</tt:StreamingCapabilities></tt:Media></tds:Capabilities>'
                    '</tds:GetCapabilitiesResponse>'))
            elif action == "GetDeviceInformation":
                reply(200, m1_prefixes(
                    '<tds:GetDeviceInformationResponse><tds:Manufacturer>Camhub Test Cameras'
                    '</tds:Manufacturer><tds:Model>FakeCam 2000</tds:Model>'
                    '<tds:FirmwareVersion>V5.7.13 build 231117</tds:FirmwareVersion>'
                    '<tds:SerialNumber>FC2000-0001</tds:SerialNumber><tds:HardwareId>88</tds:HardwareId>'
                    '</tds:GetDeviceInformationResponse>'))
            else:
                reply(500, fault("Receiver", "ActionNotSupported", "Optional Action Not Implemented"))
            return
        if service == "media1" and ns == MEDIA1_NS:
            if action == "GetProfiles":
                reply(200, f"<ns1:GetProfilesResponse>{media1_profiles()}</ns1:GetProfilesResponse>"
                      if ARGS.media == 1 else
                      m1_to_m2(f"<ns1:GetProfilesResponse>{media1_profiles()}</ns1:GetProfilesResponse>"))
                return
            if action == "GetStreamUri":
                token = text(request, "ProfileToken")
                stream, protocol = text(request, "Stream"), text(request, "Protocol")
                uri = profile_uri(token)
                details = f" token={token} stream={stream} protocol={protocol}"
                if uri is None:
                    reply(400, fault("Sender", "NoProfile", "no such profile"), details)
                elif stream != "RTP-Unicast" or protocol not in ("RTSP", "UDP"):
                    reply(400, fault("Sender", "InvalidStreamSetup", "unsupported"), details)
                else:
                    content = ('<ns1:GetStreamUriResponse><ns1:MediaUri>'
                               f'<ns2:Uri>\n  {escape(uri)}\n</ns2:Uri>'
                               '<ns2:InvalidAfterConnect>false</ns2:InvalidAfterConnect>'
                               '<ns2:InvalidAfterReboot>false</ns2:InvalidAfterReboot>'
                               '<ns2:Timeout>PT60S</ns2:Timeout></ns1:MediaUri></ns1:GetStreamUriResponse>')
                    reply(200, content if ARGS.media == 1 else m1_to_m2(content), details)
                return
            if action == "GetSnapshotUri":
                token = text(request, "ProfileToken")
                content = ('<ns1:GetSnapshotUriResponse><ns1:MediaUri><ns2:Uri>'
                           f'http://0.0.0.0:{port}/onvif/snapshot?profile={escape(token or "")}'
                           '</ns2:Uri><ns2:InvalidAfterConnect>false</ns2:InvalidAfterConnect>'
                           '<ns2:InvalidAfterReboot>false</ns2:InvalidAfterReboot>'
                           '<ns2:Timeout>PT0S</ns2:Timeout></ns1:MediaUri></ns1:GetSnapshotUriResponse>')
                reply(200, content if ARGS.media == 1 else m1_to_m2(content), f" token={token}")
                return
        if service == "media2" and ns == MEDIA2_NS:
            if action == "GetProfiles":
                kind = text(request, "Type")
                if kind != "All":
                    # Media2: without Type the profiles hold no configurations.
                    reply(200, '<tr2:GetProfilesResponse>' + "".join(
                        f'<tr2:Profiles token="{p[0]}" fixed="true"><tr2:Name>{p[1]}</tr2:Name></tr2:Profiles>'
                        for p in profiles()) + '</tr2:GetProfilesResponse>', f" type={kind}")
                else:
                    reply(200, f"<tr2:GetProfilesResponse>{media2_profiles()}</tr2:GetProfilesResponse>",
                          " type=All")
                return
            if action == "GetStreamUri":
                token, protocol = text(request, "ProfileToken"), text(request, "Protocol")
                uri = profile_uri(token)
                details = f" token={token} protocol={protocol}"
                if uri is None:
                    reply(400, fault("Sender", "NoProfile", "no such profile"), details)
                elif protocol not in ("RTSP", "RtspUnicast"):
                    reply(400, fault("Sender", "InvalidArgVal", "unsupported protocol"), details)
                else:
                    reply(200, f'<tr2:GetStreamUriResponse><tr2:Uri>\n  {escape(uri)}\n</tr2:Uri>'
                          '</tr2:GetStreamUriResponse>', details)
                return
            if action == "GetSnapshotUri":
                token = text(request, "ProfileToken")
                reply(200, '<tr2:GetSnapshotUriResponse><tr2:Uri>'
                      f'http://0.0.0.0:{port}/onvif/snapshot?profile={escape(token or "")}'
                      '</tr2:Uri></tr2:GetSnapshotUriResponse>', f" token={token}")
                return
        reply(500, fault("Receiver", "ActionNotSupported", "Optional Action Not Implemented"))


def m1_to_m2(body):
    """Media1-mode prefixes → the Media2 mode's, for Media1 replies in Media2 mode."""
    return body.replace("ns1:", "trt:").replace("ns2:", "tt:")


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--auth", choices=["none", "wsse", "digest", "both"], default="wsse")
    parser.add_argument("--digest-algorithms", default="SHA-256,MD5")
    parser.add_argument("--clock-offset", type=float, default=0.0)
    parser.add_argument("--reported-clock-offset", type=float)
    parser.add_argument("--media", type=int, choices=[1, 2], default=2)
    parser.add_argument("--rtsp-port", type=int, default=554)
    parser.add_argument("--main-size", default="1920x1080")
    parser.add_argument("--h265-only", action="store_true")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--sub-uri")
    ARGS = parser.parse_args()
    for alg in ARGS.digest_algorithms.split(","):
        if alg not in ("MD5", "SHA-256"):
            parser.error(f"--digest-algorithms: {alg}?")

    server_class = http.server.ThreadingHTTPServer
    if ":" in ARGS.bind:  # IPv6 ("::" takes IPv4 as well)
        server_class = type("Server6", (server_class,), {"address_family": socket.AF_INET6})
    server = server_class((ARGS.bind, ARGS.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"ready http://{ARGS.bind}:{server.server_address[1]}/onvif/device_service")
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
