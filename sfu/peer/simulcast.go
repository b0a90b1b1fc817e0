package peer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// registerSimulcastExtensions registers, on the publishers' media engine, the RTP
// header extensions a simulcast publisher (RFC 8853) tags its streams with: the
// section's mid and the stream's rid (and, for retransmission streams, the rid they
// repair). pion needs mid and rid to tell the layers of one section apart (it has no
// a=ssrc lines for them, so it reads the first packets of an unknown SSRC), and
// Chromium refuses an answer that negotiates simulcast without the rid extension.
// Audio gets mid only: it is never simulcast, but a browser's audio then needs no
// a=ssrc line either.
//
// Congestion feedback for the publisher is TWCC (registered with the interceptors):
// Chromium's send-side estimator runs on it and raises its upper layers once the
// estimate allows; abs-send-time and REMB (receive-side estimation) are not needed
// alongside it, and Chromium uses TWCC in preference when both are negotiated.
//
// The subscribers' engine registers none of these: the edge sends each subscriber
// one stream per section, announced by a=ssrc.
func registerSimulcastExtensions(m *webrtc.MediaEngine) error {
	for _, uri := range []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("register video header extension %s: %w", uri, err)
		}
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.SDESMidURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("register audio header extension %s: %w", sdp.SDESMidURI, err)
	}
	return nil
}

// maxRidLength bounds a rid: RFC 8852 carries it in a header extension of at most 16
// bytes (one-byte form); Chromium's and every WHIP client's rids are a few letters.
const maxRidLength = 16

// simulcastOffer is what parseSimulcast found in one video section.
type simulcastOffer struct {
	// ranks maps each rid the publisher will send to its layer rank, 0 the best.
	ranks map[string]int
	// ignored lists rids left out, with why: their a=rid lines and a=simulcast
	// entries are removed from the offer before pion answers it, so the publisher is
	// told not to send them.
	ignored []ignoredRid
}

type ignoredRid struct{ rid, reason string }

// ridLine is one a=rid line of direction send (RFC 8851 §10).
type ridLine struct {
	id                     string
	pts                    []string // pt= restriction; nil when absent
	width, height, bitrate int      // max-width, max-height, max-br; 0 when absent
	listed, paused         bool
	order                  int // position in a=simulcast (or among the a=rid lines)
}

// parseSimulcast checks the RFC 8853 simulcast description of a video section and
// ranks its layers. It returns nil for a section without send rids. Offers that
// cannot be answered sensibly are refused with ErrBadOffer: more than MaxLayers
// streams (or a=rid send lines), a rid declared twice, a rid in a=simulcast that no a=rid line declares,
// a malformed rid or a=simulcast. A rid whose pt= restriction allows no H.264
// (packetization-mode 1) payload of the section is ignored rather than refused (a
// browser doing mixed-codec simulcast keeps its H.264 layers), as is one not listed in
// a=simulcast; paused rids (~rid) are answered paused and given no rank: without
// renegotiation (WHIP has none) they never start.
func parseSimulcast(md *sdp.MediaDescription, mid string) (*simulcastOffer, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: video section %q: %s", ErrBadOffer, mid, fmt.Sprintf(format, args...))
	}
	var rids []*ridLine
	byID := map[string]*ridLine{}
	simulcast := ""
	simulcastLines := 0
	for _, a := range md.Attributes {
		switch a.Key {
		case "simulcast":
			simulcast = a.Value
			simulcastLines++
		case "rid":
			fields := strings.Fields(a.Value)
			if len(fields) < 2 {
				return nil, bad("malformed a=rid:%s", a.Value)
			}
			if fields[1] != "send" {
				continue // recv rids describe what the offerer would receive: none here
			}
			if !validRid(fields[0]) {
				return nil, bad("malformed rid %q (1 to %d letters, digits, - or _)", fields[0], maxRidLength)
			}
			if byID[fields[0]] != nil {
				return nil, bad("rid %q declared twice", fields[0])
			}
			r, err := parseRidParams(fields[0], strings.Join(fields[2:], ""))
			if err != nil {
				return nil, bad("%v", err)
			}
			r.order = len(rids)
			rids = append(rids, r)
			byID[r.id] = r
		}
	}
	if simulcastLines > 1 {
		return nil, bad("%d a=simulcast lines, at most one", simulcastLines)
	}
	send, err := simulcastSendList(simulcast)
	if err != nil {
		return nil, bad("%v", err)
	}
	if len(rids) == 0 {
		if len(send) > 0 {
			return nil, bad("unknown rid %q in a=simulcast (no a=rid line declares it)", strings.TrimPrefix(send[0], "~"))
		}
		return nil, nil
	}
	if len(send) == 0 {
		// a=rid without a=simulcast send: pion (and this edge) take the a=rid lines
		// as the stream list, in their order.
		for _, r := range rids {
			send = append(send, r.id)
		}
	}
	if len(send) > sfu.MaxLayers {
		return nil, bad("%d simulcast streams, at most %d", len(send), sfu.MaxLayers)
	}
	if len(rids) > sfu.MaxLayers {
		return nil, bad("%d a=rid send lines, at most %d simulcast streams", len(rids), sfu.MaxLayers)
	}
	for i, entry := range send {
		id, paused := strings.CutPrefix(entry, "~")
		r := byID[id]
		if r == nil {
			return nil, bad("unknown rid %q in a=simulcast (no a=rid line declares it)", id)
		}
		if r.listed {
			return nil, bad("rid %q listed twice in a=simulcast", id)
		}
		r.listed, r.paused, r.order = true, paused, i
	}

	out := &simulcastOffer{ranks: map[string]int{}}
	codecs := (&sdp.SessionDescription{MediaDescriptions: []*sdp.MediaDescription{md}}).GetCodecMap()
	var active []*ridLine
	for _, r := range rids {
		switch {
		case !r.listed:
			out.ignored = append(out.ignored, ignoredRid{r.id, "not listed in a=simulcast"})
		case r.pts != nil && !ridAllowsH264(r.pts, codecs):
			out.ignored = append(out.ignored, ignoredRid{r.id, "its pt= restriction (" + strings.Join(r.pts, ",") + ") allows no H.264 packetization-mode=1 payload"})
		case r.paused:
			// answered paused by pion; never ranked
		default:
			active = append(active, r)
		}
	}
	if len(active) == 0 {
		return nil, bad("no simulcast stream the edge can take (every rid is paused or restricted to a codec other than H.264)")
	}
	rankLayers(active)
	for i, r := range active {
		out.ranks[r.id] = i
	}
	return out, nil
}

func validRid(id string) bool {
	if id == "" || len(id) > maxRidLength {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseRidParams reads the restrictions of an a=rid line: "pt=102,104;max-width=1280;...".
// Unknown restrictions are ignored (RFC 8851 §5 lets the answerer drop them).
func parseRidParams(id, params string) (*ridLine, error) {
	r := &ridLine{id: id}
	for _, p := range strings.Split(params, ";") {
		if p == "" {
			continue
		}
		key, value, _ := strings.Cut(p, "=")
		number := func() (int, error) {
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("rid %q: %s=%q is not a positive number", id, key, value)
			}
			return n, nil
		}
		var err error
		switch strings.ToLower(key) {
		case "pt":
			r.pts = strings.Split(value, ",")
		case "max-width":
			r.width, err = number()
		case "max-height":
			r.height, err = number()
		case "max-br":
			r.bitrate, err = number()
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// simulcastSendList returns the send streams of an a=simulcast value ("send
// h;m;~l recv x", RFC 8853 §5.1), each a rid, "~rid" when paused. Alternatives
// ("h,h2") count as streams of their own: pion answers every rid.
func simulcastSendList(value string) ([]string, error) {
	if value == "" {
		return nil, nil
	}
	fields := strings.Fields(value)
	if len(fields)%2 != 0 {
		return nil, fmt.Errorf("malformed a=simulcast:%s", value)
	}
	var send []string
	for i := 0; i < len(fields); i += 2 {
		switch fields[i] {
		case "send":
			if send != nil {
				return nil, fmt.Errorf("malformed a=simulcast:%s (two send lists)", value)
			}
			for _, stream := range strings.Split(fields[i+1], ";") {
				for _, alt := range strings.Split(stream, ",") {
					if !validRid(strings.TrimPrefix(alt, "~")) {
						return nil, fmt.Errorf("malformed rid %q in a=simulcast", alt)
					}
					send = append(send, alt)
				}
			}
		case "recv":
		default:
			return nil, fmt.Errorf("malformed a=simulcast:%s (direction %q)", value, fields[i])
		}
	}
	return send, nil
}

// ridAllowsH264 reports whether one of the payload types a rid is restricted to is
// an H.264 packetization-mode 1 one of the section.
func ridAllowsH264(pts []string, codecs map[uint8]sdp.Codec) bool {
	for _, s := range pts {
		pt, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			continue
		}
		c, ok := codecs[uint8(pt)]
		if ok && strings.EqualFold(c.Name, "H264") && c.ClockRate == 90000 && packetizationMode1(c.Fmtp) {
			return true
		}
	}
	return false
}

// ridFamilies are the conventional names of simulcast layers, best first: Chromium
// samples and LiveKit use f/h/q (full, half, quarter), Janus and mediasoup demos
// h/m/l.
var ridFamilies = [][]string{{"f", "h", "q"}, {"h", "m", "l"}, {"hi", "mid", "lo"}, {"high", "medium", "low"}}

// rankLayers sorts rids best first: by picture size when every rid gives
// max-width or max-height, else by max-br when every rid gives it, else by
// well-known names when they all belong to one family, else in a=simulcast order
// (first = best, as RFC 8853 §5.3 suggests for preference).
func rankLayers(rids []*ridLine) {
	slices.SortStableFunc(rids, func(a, b *ridLine) int { return a.order - b.order })
	all := func(f func(*ridLine) bool) bool {
		return !slices.ContainsFunc(rids, func(r *ridLine) bool { return !f(r) })
	}
	pixels := func(r *ridLine) int {
		w, h := r.width, r.height
		// One dimension alone still orders layers of one aspect ratio.
		if w == 0 {
			w = h * 16 / 9
		}
		if h == 0 {
			h = w * 9 / 16
		}
		return w * h
	}
	switch {
	case all(func(r *ridLine) bool { return r.width > 0 || r.height > 0 }):
		slices.SortStableFunc(rids, func(a, b *ridLine) int { return pixels(b) - pixels(a) })
	case all(func(r *ridLine) bool { return r.bitrate > 0 }):
		slices.SortStableFunc(rids, func(a, b *ridLine) int { return b.bitrate - a.bitrate })
	default:
		for _, family := range ridFamilies {
			if all(func(r *ridLine) bool { return slices.Contains(family, strings.ToLower(r.id)) }) {
				slices.SortStableFunc(rids, func(a, b *ridLine) int {
					return slices.Index(family, strings.ToLower(a.id)) - slices.Index(family, strings.ToLower(b.id))
				})
				return
			}
		}
	}
}

// withoutIgnoredRids returns offer with the ignored rids of its sections removed:
// their a=rid lines, and their entries in a=simulcast. pion answers every rid the
// offer declares; removed, the answer tells the publisher not to send them. The edit
// is line by line so the rest of the offer reaches pion byte for byte.
func withoutIgnoredRids(offer string, sections []offerSection) string {
	drop := map[int][]string{} // media section index -> rids
	for _, s := range sections {
		if s.simulcast == nil {
			continue
		}
		for _, ig := range s.simulcast.ignored {
			drop[s.index] = append(drop[s.index], ig.rid)
		}
	}
	if len(drop) == 0 {
		return offer
	}
	lines := strings.SplitAfter(offer, "\n")
	out := make([]string, 0, len(lines))
	section := -1
	for _, line := range lines {
		text := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(text, "m=") {
			section++
		}
		rids := drop[section]
		if section < 0 || len(rids) == 0 {
			out = append(out, line)
			continue
		}
		if value, ok := strings.CutPrefix(text, "a=rid:"); ok {
			id, _, _ := strings.Cut(value, " ")
			if slices.Contains(rids, id) {
				continue
			}
		}
		if value, ok := strings.CutPrefix(text, "a=simulcast:"); ok {
			line = "a=simulcast:" + simulcastWithout(value, rids) + line[len(text):]
		}
		out = append(out, line)
	}
	return strings.Join(out, "")
}

// simulcastWithout removes rids from the send list of an a=simulcast value
// (already checked by parseSimulcast).
func simulcastWithout(value string, rids []string) string {
	fields := strings.Fields(value)
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] != "send" {
			continue
		}
		var streams []string
		for _, stream := range strings.Split(fields[i+1], ";") {
			var alts []string
			for _, alt := range strings.Split(stream, ",") {
				if !slices.Contains(rids, strings.TrimPrefix(alt, "~")) {
					alts = append(alts, alt)
				}
			}
			if len(alts) > 0 {
				streams = append(streams, strings.Join(alts, ","))
			}
		}
		fields[i+1] = strings.Join(streams, ";")
	}
	return strings.Join(fields, " ")
}
