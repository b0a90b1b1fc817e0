package udprelay

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// RewriteCandidates returns sdp (an answer) with its ICE candidates replaced: in
// each media section the first UDP candidate is kept, as a host candidate at to,
// and every other candidate (TCP, other addresses) is removed, so the client can
// reach the server only through the relay.
func RewriteCandidates(sdp string, to netip.AddrPort) string {
	lines, eol := splitSDP(sdp)
	out := make([]string, 0, len(lines))
	kept := false
	for _, ln := range lines {
		if strings.HasPrefix(ln, "m=") {
			kept = false
		}
		c, ok := parseCandidate(ln)
		if !ok {
			out = append(out, ln)
			continue
		}
		if kept || !strings.EqualFold(c.transport, "udp") || c.component != "1" {
			continue
		}
		kept = true
		out = append(out, fmt.Sprintf("a=candidate:%s 1 udp %s %s %d typ host", c.foundation, c.priority, to.Addr(), to.Port()))
	}
	return strings.Join(out, eol)
}

// StripCandidates returns sdp (an offer) without ICE candidates, so the server
// cannot check the client's real addresses directly and learns only the relay's
// upstream address (peer-reflexive) from the client's checks.
func StripCandidates(sdp string) string {
	lines, eol := splitSDP(sdp)
	out := lines[:0:0]
	for _, ln := range lines {
		if _, ok := parseCandidate(ln); ok || ln == "a=end-of-candidates" {
			continue
		}
		out = append(out, ln)
	}
	return strings.Join(out, eol)
}

// UpstreamFromSDP returns the server's UDP address from its answer: the first IPv4
// UDP candidate, a loopback one if any (the relay runs on the same machine).
func UpstreamFromSDP(sdp string) (netip.AddrPort, error) {
	lines, _ := splitSDP(sdp)
	var first netip.AddrPort
	for _, ln := range lines {
		c, ok := parseCandidate(ln)
		if !ok || !strings.EqualFold(c.transport, "udp") {
			continue
		}
		a, err := netip.ParseAddr(c.addr)
		if err != nil || !a.Is4() {
			continue
		}
		port, err := strconv.ParseUint(c.port, 10, 16)
		if err != nil {
			continue
		}
		ap := netip.AddrPortFrom(a, uint16(port))
		if a.IsLoopback() {
			return ap, nil
		}
		if !first.IsValid() {
			first = ap
		}
	}
	if !first.IsValid() {
		return first, errors.New("udprelay: no IPv4 UDP candidate in the answer")
	}
	return first, nil
}

// WrapSignal wraps a signalling function (offer SDP -> answer SDP, e.g. a WHEP
// POST) so the peer using it connects through r: the offer goes without
// candidates, the answer comes back pointing at r.Addr(), and r's upstream is set
// from the answer's candidates if it was not set yet.
func (r *Relay) WrapSignal(signal func(offer string) (string, error)) func(offer string) (string, error) {
	return func(offer string) (string, error) {
		answer, err := signal(StripCandidates(offer))
		if err != nil {
			return "", err
		}
		if r.server.Load() == nil {
			up, err := UpstreamFromSDP(answer)
			if err != nil {
				return "", err
			}
			r.SetUpstream(up)
		}
		return RewriteCandidates(answer, r.Addr()), nil
	}
}

type candidate struct {
	foundation, component, transport, priority, addr, port string
}

// parseCandidate parses "a=candidate:F C T P ADDR PORT typ ...".
func parseCandidate(ln string) (candidate, bool) {
	rest, ok := strings.CutPrefix(ln, "a=candidate:")
	if !ok {
		return candidate{}, false
	}
	f := strings.Fields(rest)
	if len(f) < 8 {
		return candidate{}, false
	}
	return candidate{foundation: f[0], component: f[1], transport: f[2], priority: f[3], addr: f[4], port: f[5]}, true
}

// splitSDP splits sdp into lines, keeping its line ending ("\r\n" normally).
func splitSDP(sdp string) ([]string, string) {
	eol := "\r\n"
	if !strings.Contains(sdp, "\r\n") {
		eol = "\n"
	}
	trailing := strings.HasSuffix(sdp, eol)
	lines := strings.Split(strings.TrimSuffix(sdp, eol), eol)
	if trailing {
		lines = append(lines, "")
	}
	return lines, eol
}
