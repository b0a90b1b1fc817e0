// Package sfu is Lectern's media hub: sessions, publications, tracks and the sinks
// that consume them. It knows RTP packets and nothing about the protocols that carry
// them (WebRTC, RTSP), files, object stores or HTTP; those are edges that import sfu.
//
// The packet path is: an edge's read goroutine calls [Track.WriteRTP] with a packet it
// received; the track rewrites sequence numbers and timestamps so that consumers see
// one continuous stream across publisher reconnects, copies the packet into a pooled,
// reference-counted [Packet], keeps it in a per-track cache (for NACKs and for fast
// start of late joiners), and hands it to every attached [Sink]. Sinks never block:
// the usual sink is a [Queue], a bounded per-consumer buffer that drops video until the
// next keyframe when its consumer falls behind.
package sfu
