// Package peer is the WebRTC edge of the hub (pion/webrtc v4): WHIP publishers
// (RFC 9725) feed session tracks, WHEP subscribers get one downtrack per track they
// watch. Two webrtc.APIs (publishers with NACK generation, receiver reports and
// TWCC; subscribers with nothing per packet) share the sockets: H.264
// (packetization-mode 1) and Opus only, one UDP port for all ICE traffic (UDP mux),
// ICE-TCP for networks that block UDP, NAT 1:1 addresses.
//
// Downtracks are written by a few egress workers (egress.go), not a goroutine
// each; the UDP socket batches what a worker writes in one round into sendmmsg
// calls and UDP GSO trains (batchconn.go).
//
// NACKs from subscribers are answered from the track's shared packet cache rather
// than from a retransmission buffer per connection, and their keyframe requests are
// coalesced by the track before they reach the publisher.
package peer
