package peer

import (
	"fmt"
	"strings"
)

// fragment is what a WHIP/WHEP PATCH body (application/trickle-ice-sdpfrag, RFC 8840)
// carries that the edge uses: ICE credentials (which, when new, mean an ICE restart)
// and candidates.
type fragment struct {
	ufrag, pwd string
	candidates []string // "candidate:..." values
	endOfCands bool
}

const maxFragmentLines = 256

func parseFragment(body string) (fragment, error) {
	var f fragment
	lines := strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
	if len(lines) > maxFragmentLines {
		return f, fmt.Errorf("%w: %d lines, at most %d", ErrBadFragment, len(lines), maxFragmentLines)
	}
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || len(key) != 1 {
			return f, fmt.Errorf("%w: line %d is not an SDP line", ErrBadFragment, i+1)
		}
		if key != "a" {
			continue // m=, c= and friends only scope the attributes
		}
		name, value, _ := strings.Cut(val, ":")
		switch name {
		case "ice-ufrag":
			f.ufrag = value
		case "ice-pwd":
			f.pwd = value
		case "candidate":
			f.candidates = append(f.candidates, val)
		case "end-of-candidates":
			f.endOfCands = true
		}
	}
	if (f.ufrag == "") != (f.pwd == "") {
		return f, fmt.Errorf("%w: ice-ufrag and ice-pwd must come together", ErrBadFragment)
	}
	return f, nil
}

// replaceICECredentials rewrites every ice-ufrag/ice-pwd line of an SDP.
func replaceICECredentials(sdp, ufrag, pwd string) string {
	lines := strings.Split(sdp, "\r\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			lines[i] = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(l, "a=ice-pwd:"):
			lines[i] = "a=ice-pwd:" + pwd
		}
	}
	return strings.Join(lines, "\r\n")
}

// localCredentials returns the first ice-ufrag and ice-pwd of an SDP.
func localCredentials(sdp string) (ufrag, pwd string) {
	for _, l := range strings.Split(sdp, "\r\n") {
		switch {
		case ufrag == "" && strings.HasPrefix(l, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(l, "a=ice-ufrag:")
		case pwd == "" && strings.HasPrefix(l, "a=ice-pwd:"):
			pwd = strings.TrimPrefix(l, "a=ice-pwd:")
		}
	}
	return ufrag, pwd
}
