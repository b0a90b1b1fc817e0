package peer

import (
	"fmt"

	"github.com/pion/webrtc/v4"
)

// Node-to-node relays (package cluster/relay) share the edge's sockets (the one ICE
// UDP port the firewall opens), its DTLS certificate and its codecs, but not its
// WHIP/WHEP machinery: a relay forwards every track exactly, with no layer choice and
// no adaptation. The caller owns the connections it gets here and must close them
// before the edge closes.

// NewRelaySenderPC returns a peer connection for the origin side of a relay: the
// subscribers' API (no interceptors; the relay answers NACKs from the tracks' caches
// and writes its own reports).
func (e *Edge) NewRelaySenderPC() (*webrtc.PeerConnection, error) {
	pc, err := e.subAPI.NewPeerConnection(e.pcConfig)
	if err != nil {
		return nil, fmt.Errorf("new relay peer connection: %w", err)
	}
	return pc, nil
}

// NewRelayReceiverPC returns a peer connection for the pulling side of a relay: the
// publishers' API, whose interceptors send NACKs and receiver reports upstream.
func (e *Edge) NewRelayReceiverPC() (*webrtc.PeerConnection, error) {
	pc, err := e.pubAPI.NewPeerConnection(e.pcConfig)
	if err != nil {
		return nil, fmt.Errorf("new relay peer connection: %w", err)
	}
	return pc, nil
}
