#!/usr/bin/python3
"""A WHIP publisher or WHEP player made of GStreamer's webrtcbin with its default
bundle-policy (max-bundle): its offer puts every section but the first in
bundle-only sections (port 0, a=bundle-only), as GStreamer users' offers are.

usage: webrtcbin.py whip|whep URL TOKEN SECONDS

It prints the offer it sent between "OFFER BEGIN" and "OFFER END" and, as a
player, "received video=N audio=M" (buffers per kind) at the end. Exit status 0
when signalling worked; the Go test judges the media.
"""
import sys
import threading
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

mode, url, token, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
Gst.init(None)

if mode == "whip":
    pipeline = Gst.parse_launch(
        "webrtcbin name=w bundle-policy=max-bundle "
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
        "! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=30 "
        "! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=102 "
        "! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000 ! w. "
        "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
        "! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w."
    )
    webrtc = pipeline.get_by_name("w")
else:
    pipeline = Gst.Pipeline.new("player")
    webrtc = Gst.ElementFactory.make("webrtcbin", "w")
    webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
    pipeline.add(webrtc)
    recv = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
    webrtc.emit("add-transceiver", recv, Gst.Caps.from_string(
        "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,packetization-mode=(string)1,profile-level-id=(string)42e01f"))
    webrtc.emit("add-transceiver", recv, Gst.Caps.from_string(
        "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"))

counts = {"video": 0, "audio": 0}
lock = threading.Lock()
loop = GLib.MainLoop()
failed = []


def fail(msg):
    print("error: " + msg, file=sys.stderr, flush=True)
    failed.append(msg)
    loop.quit()


def on_pad(_, pad):
    # A player's incoming stream: count its RTP buffers by kind.
    if pad.get_direction() != Gst.PadDirection.SRC:
        return
    caps = pad.get_current_caps() or pad.query_caps(None)
    kind = caps.get_structure(0).get_string("media") or "video"
    sink = Gst.ElementFactory.make("fakesink")
    sink.set_property("sync", False)
    pipeline.add(sink)
    sink.sync_state_with_parent()
    pad.link(sink.get_static_pad("sink"))

    def probe(_pad, _info):
        with lock:
            counts[kind] += 1
        return Gst.PadProbeReturn.OK

    sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)


def send_offer():
    offer = webrtc.get_property("local-description").sdp.as_text()
    print("OFFER BEGIN\n" + offer + "OFFER END", flush=True)
    req = urllib.request.Request(url, data=offer.encode(), method="POST", headers={
        "Content-Type": "application/sdp", "Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = resp.read().decode()
    except Exception as e:  # an HTTP error: the test shows it
        body = e.read().decode() if hasattr(e, "read") else ""
        fail("POST %s: %s %s" % (url, e, body))
        return False
    _, sdp = GstSdp.SDPMessage.new_from_text(answer)
    desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
    webrtc.emit("set-remote-description", desc, Gst.Promise.new())
    return False


def on_gathering(element, _):
    if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
        GLib.idle_add(send_offer)


def on_offer(promise, _):
    reply = promise.get_reply()
    offer = reply.get_value("offer")
    webrtc.emit("set-local-description", offer, Gst.Promise.new())


def on_negotiation_needed(element):
    element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))


webrtc.connect("on-negotiation-needed", on_negotiation_needed)
webrtc.connect("notify::ice-gathering-state", on_gathering)
webrtc.connect("pad-added", on_pad)
bus = pipeline.get_bus()
bus.add_signal_watch()
bus.connect("message::error", lambda _b, m: fail(str(m.parse_error())))
pipeline.set_state(Gst.State.PLAYING)
GLib.timeout_add(int(seconds * 1000), loop.quit)
loop.run()
pipeline.set_state(Gst.State.NULL)
with lock:
    print("received video=%d audio=%d" % (counts["video"], counts["audio"]), flush=True)
sys.exit(1 if failed else 0)
