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
//
// Each WHEP connection has a bandwidth estimate (adapt.go, bwe.go) that chooses the
// simulcast layer of each of its pictures (audio reserved first, the main picture
// next; video paused when not even the lowest layer fits) and bounds its
// retransmissions. It is loss-based, from the subscriber's RTCP receiver reports
// (loss, and the packets that arrived over the time they took to send; the round
// trip from LSR/DLSR against the downtracks' own sender reports) with NACKs as the
// early signal. Every receiver sends those (browsers, pion, decoders' gateways),
// they need no header extension on every packet, and the controller runs where
// the connection's RTCP is handled (rtcpsink.go) when it arrives: no goroutine, timer or lock per
// packet. A send-side estimate from TWCC feedback (pion's gcc interceptor) would
// add a pacer goroutine and allocations per packet to every connection, more than
// the forwarding path itself costs at a hundred classrooms.
package peer
