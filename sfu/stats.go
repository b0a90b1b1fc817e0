package sfu

import "sync/atomic"

// Stats are the hub's counters, shared by a registry, its tracks and the edges that
// forward its packets. Exported as Prometheus metrics by the server.
type Stats struct {
	PacketsIn        atomic.Uint64 // packets written to tracks by sources
	BytesIn          atomic.Uint64 // RTP payload bytes written to tracks
	PacketsOut       atomic.Uint64 // packets sent to consumers (edges count)
	BytesOut         atomic.Uint64 // RTP payload bytes sent to consumers
	PacketsRejected  atomic.Uint64 // malformed packets refused by tracks
	QueueDrops       atomic.Uint64 // packets a slow consumer's queue dropped
	NACKsAnswered    atomic.Uint64 // packets retransmitted from a track cache
	NACKsMissed      atomic.Uint64 // NACKed packets no longer cached
	KeyframeRequests atomic.Uint64 // keyframe requests sent to sources (after coalescing)
}
