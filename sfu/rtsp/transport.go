package rtsp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// transport is one RTP transport specification of a Transport header (RFC 2326
// §12.39), the subset Lectern speaks: unicast RTP/AVP over UDP or interleaved in the
// RTSP TCP connection.
type transport struct {
	tcp         bool
	interleaved [2]int // RTP and RTCP channels; -1 when not given
	clientPorts [2]int // RTP and RTCP ports of the client (UDP); 0 when not given
	serverPorts [2]int // in responses
	record      bool   // mode=record
	ssrc        uint32
	hasSSRC     bool
}

var errTransport = errors.New("unsupported transport")

// parseTransports returns the specifications of a Transport header in order of the
// client's preference. Multicast and non-RTP profiles are left out.
func parseTransports(value string) ([]transport, error) {
	var out []transport
	var firstErr error
	for _, spec := range strings.Split(value, ",") {
		t, err := parseTransport(strings.TrimSpace(spec))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		if firstErr == nil {
			firstErr = fmt.Errorf("%w: empty Transport header", errTransport)
		}
		return nil, firstErr
	}
	return out, nil
}

func parseTransport(spec string) (transport, error) {
	t := transport{interleaved: [2]int{-1, -1}}
	parts := strings.Split(spec, ";")
	switch strings.ToUpper(parts[0]) {
	case "RTP/AVP", "RTP/AVP/UDP":
	case "RTP/AVP/TCP":
		t.tcp = true
	default:
		return t, fmt.Errorf("%w: profile %q (want RTP/AVP or RTP/AVP/TCP)", errTransport, truncate(parts[0], 32))
	}
	for _, p := range parts[1:] {
		key, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		var err error
		switch strings.ToLower(key) {
		case "multicast":
			return t, fmt.Errorf("%w: multicast", errTransport)
		case "interleaved":
			t.interleaved, err = parsePair(val)
		case "client_port":
			t.clientPorts, err = parsePair(val)
		case "server_port":
			t.serverPorts, err = parsePair(val)
		case "mode":
			m := strings.ToLower(strings.Trim(val, `"`))
			t.record = m == "record" || m == "receive"
		case "ssrc":
			var v uint64
			v, err = strconv.ParseUint(strings.TrimSpace(val), 16, 32)
			t.ssrc, t.hasSSRC = uint32(v), err == nil
			err = nil // an unreadable ssrc is only a hint
		}
		if err != nil {
			return t, fmt.Errorf("%w: %s: %v", errTransport, key, err)
		}
	}
	return t, nil
}

// parsePair parses "a-b" or "a" (then b = a+1).
func parsePair(s string) ([2]int, error) {
	a, b, hasB := strings.Cut(s, "-")
	x, err := strconv.Atoi(a)
	if err != nil || x < 0 || x > 65535 {
		return [2]int{}, fmt.Errorf("bad number %q", truncate(a, 16))
	}
	y := x + 1
	if hasB {
		if y, err = strconv.Atoi(b); err != nil || y < 0 || y > 65535 {
			return [2]int{}, fmt.Errorf("bad number %q", truncate(b, 16))
		}
	}
	return [2]int{x, y}, nil
}

// String formats the specification for a Transport header.
func (t transport) String() string {
	var b strings.Builder
	if t.tcp {
		b.WriteString("RTP/AVP/TCP;unicast")
	} else {
		b.WriteString("RTP/AVP;unicast")
	}
	if t.interleaved[0] >= 0 {
		fmt.Fprintf(&b, ";interleaved=%d-%d", t.interleaved[0], t.interleaved[1])
	}
	if t.clientPorts[0] > 0 {
		fmt.Fprintf(&b, ";client_port=%d-%d", t.clientPorts[0], t.clientPorts[1])
	}
	if t.serverPorts[0] > 0 {
		fmt.Fprintf(&b, ";server_port=%d-%d", t.serverPorts[0], t.serverPorts[1])
	}
	if t.hasSSRC {
		fmt.Fprintf(&b, ";ssrc=%08X", t.ssrc)
	}
	if t.record {
		b.WriteString(";mode=record")
	}
	return b.String()
}
