package peer

import (
	"fmt"
	"net"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Node-to-node relays (package cluster/relay) use the edge's certificate, codecs and
// interceptors, but not its WHIP/WHEP machinery: a relay forwards every track
// exactly, with no layer choice and no adaptation. The caller owns the connections it
// gets here and must close them before the edge closes.
//
// The origin's side of a relay shares the edge's ICE UDP port (the one the firewall
// opens). The pulling side cannot: its connections to one origin would all run
// between the same two sockets, and the UDP mux tells connections apart by the
// remote address (after the first STUN check), so a second relay from the same
// origin (a site's talk-back beside the trainer, a re-pull) would take the first
// one's packets. Each pulling connection gets ephemeral sockets of its own instead,
// on the edge's IP when it is bound to one.

// newRelayAPI returns the pulling side's API: se without the muxes, UDP only.
func newRelayAPI(se webrtc.SettingEngine, m *webrtc.MediaEngine, ir *interceptor.Registry, ip net.IP) *webrtc.API {
	se.SetICEUDPMux(nil)
	se.SetICETCPMux(nil)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if ip != nil && !ip.IsUnspecified() {
		se.SetIPFilter(func(x net.IP) bool { return x.Equal(ip) })
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir))
}

// NewRelaySenderPC returns a peer connection for the origin side of a relay, on the
// edge's ICE port: the subscribers' API (no interceptors; the relay answers NACKs
// from the tracks' caches).
func (e *Edge) NewRelaySenderPC() (*webrtc.PeerConnection, error) {
	pc, err := e.subAPI.NewPeerConnection(e.pcConfig)
	if err != nil {
		return nil, fmt.Errorf("new relay peer connection: %w", err)
	}
	return pc, nil
}

// NewRelayReceiverPC returns a peer connection for the pulling side of a relay, on
// sockets of its own: the publishers' codecs and interceptors, which send NACKs and
// receiver reports upstream.
func (e *Edge) NewRelayReceiverPC() (*webrtc.PeerConnection, error) {
	pc, err := e.relayAPI.NewPeerConnection(e.pcConfig)
	if err != nil {
		return nil, fmt.Errorf("new relay peer connection: %w", err)
	}
	return pc, nil
}
