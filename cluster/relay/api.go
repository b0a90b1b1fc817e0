package relay

import (
	"log/slog"
	"time"

	"lectern/auth"
	"lectern/sfu"
	"lectern/sfu/peer"
)

// TrackInfo describes one track of a relayed publication: what the edge needs to
// offer for it and to create its local copy.
type TrackInfo struct {
	Name      string `json:"name"` // local name within the publication: "video", "video~1", "audio.opus"
	Kind      string `json:"kind"` // "audio" or "video"
	Mime      string `json:"mime"`
	ClockRate uint32 `json:"clock_rate"`
	Channels  uint16 `json:"channels,omitempty"`
	Fmtp      string `json:"fmtp,omitempty"`
}

// codec returns the track's codec.
func (t TrackInfo) codec() sfu.Codec {
	return sfu.Codec{MimeType: t.Mime, ClockRate: t.ClockRate, Channels: t.Channels, Fmtp: t.Fmtp}
}

// ServerConfig configures the origin side.
type ServerConfig struct {
	Registry *sfu.Registry
	// Edge provides the connections' sockets and certificate (see peer.Edge.NewRelaySenderPC).
	Edge   *peer.Edge
	Issuer *auth.Issuer
	Logger *slog.Logger
}

// Config configures the edge side (a Manager).
type Config struct {
	Registry *sfu.Registry
	// Edge provides the connections' sockets and certificate (see peer.Edge.NewRelayReceiverPC).
	Edge   *peer.Edge
	Issuer *auth.Issuer
	// NodeID names this node in the credentials it presents.
	NodeID string
	Logger *slog.Logger
	// Linger is how long a relay outlives the last local consumer of its session.
	// Default 10 s.
	Linger time.Duration
	// PollInterval is how often a connected relay checks the origin's track list (a
	// screen share started: re-pull). Default 2 s.
	PollInterval time.Duration
}

// Info describes one relay, for metrics and /api/nodes.
type Info struct {
	Direction   string    `json:"direction"` // "in" (pulled here) or "out" (served to another node)
	Session     string    `json:"session"`
	Publication string    `json:"publication"`
	Peer        string    `json:"peer"` // the origin's URL (in) or the edge's node id (out)
	Tracks      []string  `json:"tracks"`
	Started     time.Time `json:"started"`
	Bytes       uint64    `json:"bytes"`
}
