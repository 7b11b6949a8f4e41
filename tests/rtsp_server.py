#!/usr/bin/python3
"""A real RTSP server for tests and benchmarks: GStreamer's gst-rtsp-server, like an IP camera.

Runs under the system /usr/bin/python3 (the GObject bindings come from Debian:
python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,ugly},
gstreamer1.0-libav), never the project's venv. Prints ``ready URL`` on stdout
once it listens. Serves over TCP and UDP, as cameras do.

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --video clip.avi            # any file, H.264-encoded live
    /usr/bin/python3 tests/rtsp_server.py --port 8554 --h264 clip.mp4 --stamps t  # pre-encoded H.264, no re-encode
    /usr/bin/python3 tests/rtsp_server.py --port 8554 --user admin --password pw  # basic auth
"""

from __future__ import annotations

import argparse
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# zerolatency + ultrafast: the encoder adds no frame delay and little CPU on a 2-core test machine.
ENCODE = "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=20 ! video/x-h264,profile=baseline"


def launch_line(args: argparse.Namespace) -> str:
    if args.h264:  # an MP4 that already holds H.264: served as is, so the server costs almost no CPU
        return f"( filesrc location={args.h264} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    if args.video:
        return (
            f"( multifilesrc location={args.video} loop=true ! decodebin ! {ENCODE} "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    return (
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=10/1 ! {ENCODE} "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def stamp_buffers(factory: GstRtspServer.RTSPMediaFactory, path: str) -> None:
    """Write 'frame_number wall_time' for every frame handed to the payloader (benchmarks' glass time)."""
    out = open(path, "w", buffering=1)
    count = [0]

    def probe(_pad, _info):
        out.write(f"{count[0]} {time.time():.6f}\n")
        count[0] += 1
        return Gst.PadProbeReturn.OK

    def configure(_factory, media):
        pay = media.get_element().get_by_name("pay0")
        pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)

    factory.connect("media-configure", configure)


def add_basic_auth(
    server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory, user: str, password: str
) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role(user, "media.factory.access", True)
    permissions.add_permission_for_role(user, "media.factory.construct", True)
    factory.set_permissions(permissions)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--video", help="any video file GStreamer decodes; looped and encoded to H.264 live")
    source.add_argument("--h264", help="an MP4 holding H.264, served without re-encoding (not looped)")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--stamps", help="file to write 'frame wall_time' lines to")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(True)  # one pipeline for all clients, like a camera's single encoder
    if args.stamps:
        stamp_buffers(factory, args.stamps)
    if args.user:
        add_basic_auth(server, factory, args.user, args.password)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    print(f"ready rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    try:
        GLib.MainLoop().run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
