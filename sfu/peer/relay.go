package peer

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
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
// from the tracks' caches). extra are codecs only a relay carries (see relayMedia).
func (e *Edge) NewRelaySenderPC(extra ...sfu.Codec) (*webrtc.PeerConnection, error) {
	api := e.subAPI
	if len(extra) > 0 {
		m, err := relayMedia(extra)
		if err != nil {
			return nil, err
		}
		api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(e.subSettings), webrtc.WithInterceptorRegistry(e.subInterceptors))
	}
	pc, err := api.NewPeerConnection(e.pcConfig)
	if err != nil {
		return nil, fmt.Errorf("new relay peer connection: %w", err)
	}
	return pc, nil
}

// NewRelayReceiverPC returns a peer connection for the pulling side of a relay, on
// sockets of its own: the publishers' codecs and interceptors, which send NACKs and
// receiver reports upstream. extra are codecs only a relay carries (see relayMedia).
func (e *Edge) NewRelayReceiverPC(extra ...sfu.Codec) (*webrtc.PeerConnection, error) {
	api := e.relayAPI
	if len(extra) > 0 {
		m, err := relayMedia(extra)
		if err != nil {
			return nil, err
		}
		ir, err := publisherInterceptors(m)
		if err != nil {
			return nil, err
		}
		api = newRelayAPI(e.subSettings, m, ir, e.udp.LocalAddr().(*net.UDPAddr).IP)
	}
	pc, err := api.NewPeerConnection(e.pcConfig)
	if err != nil {
		return nil, fmt.Errorf("new relay peer connection: %w", err)
	}
	return pc, nil
}

// relayPayloadTypes are the dynamic payload types (96-127) registerCodecs leaves
// free, for the extra codecs of one relay connection.
var relayPayloadTypes = func() []webrtc.PayloadType {
	used := []webrtc.PayloadType{opusPayloadType}
	for i := range h264Profiles {
		used = append(used, h264PayloadType(i))
	}
	var free []webrtc.PayloadType
	for pt := webrtc.PayloadType(96); pt <= 127; pt++ {
		if !slices.Contains(used, pt) {
			free = append(free, pt)
		}
	}
	return free
}()

// relayMedia returns a media engine with the edge's codecs and, for one relay
// connection, extra: codecs no browser negotiates but both ends of a relay are
// Lectern nodes that carry (a studio encoder's AAC, with its format: RFC 3640's
// config differs per stream, so it is registered per connection and never in
// the WHIP/WHEP APIs). Each distinct codec gets a payload type of its own.
func relayMedia(extra []sfu.Codec) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, err
	}
	var seen []sfu.Codec
	for _, c := range extra {
		if slices.Contains(seen, c) {
			continue
		}
		if len(seen) == len(relayPayloadTypes) {
			return nil, fmt.Errorf("relay codecs: more than %d", len(relayPayloadTypes))
		}
		kind := webrtc.RTPCodecTypeAudio
		if strings.HasPrefix(strings.ToLower(c.MimeType), "video/") {
			kind = webrtc.RTPCodecTypeVideo
		}
		err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.MimeType, ClockRate: c.ClockRate,
				Channels: c.Channels, SDPFmtpLine: c.Fmtp},
			PayloadType: relayPayloadTypes[len(seen)],
		}, kind)
		if err != nil {
			return nil, fmt.Errorf("register relay codec %s: %w", c.MimeType, err)
		}
		seen = append(seen, c)
	}
	return m, nil
}
