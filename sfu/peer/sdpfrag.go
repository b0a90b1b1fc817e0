package peer

import (
	"fmt"
	"strings"

	"github.com/pion/ice/v4"
)

// fragment is what a WHIP/WHEP PATCH body (application/trickle-ice-sdpfrag, RFC 8840)
// carries that the edge uses: ICE credentials (which, when new, mean an ICE restart)
// and candidates.
type fragment struct {
	ufrag, pwd string
	candidates []string // "candidate:..." values
	endOfCands bool
}

const (
	maxFragmentLines = 256
	// maxCandidateLen bounds one candidate attribute; real ones are under 200 bytes.
	maxCandidateLen = 1024
)

// sdpLines splits an SDP or SDP fragment into lines. RFC 8866 wants CRLF, but
// clients send LF alone too (hand-written or library SDP): both end a line here.
func sdpLines(s string) []string {
	return strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

// parseFragment reads a trickle-ice-sdpfrag with CRLF or LF line ends. A fragment
// that is not one is refused with ErrBadFragment and the reason, before anything is
// applied: bad lines, control characters, credentials that are not ICE's
// (RFC 8839 §5.4), two ICE sessions in one fragment (the edge bundles everything on
// one transport), or a candidate that does not parse.
func parseFragment(body string) (fragment, error) {
	var f fragment
	lines := sdpLines(body)
	if len(lines) > maxFragmentLines {
		return f, fmt.Errorf("%w: %d lines, at most %d", ErrBadFragment, len(lines), maxFragmentLines)
	}
	for i, line := range lines {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			continue
		}
		if c := strings.IndexFunc(line, isControl); c >= 0 {
			return fragment{}, fmt.Errorf("%w: line %d has a control character (0x%02x); lines end in CRLF or LF", ErrBadFragment, i+1, line[c])
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || len(key) != 1 || key[0] < 'a' || key[0] > 'z' {
			return fragment{}, fmt.Errorf("%w: line %d is not an SDP line (<letter>=<value>)", ErrBadFragment, i+1)
		}
		if key != "a" {
			continue // m=, c= and friends only scope the attributes
		}
		name, value, _ := strings.Cut(val, ":")
		switch name {
		case "ice-ufrag":
			if err := setICECredential(&f.ufrag, name, value, 4, i+1); err != nil {
				return fragment{}, err
			}
		case "ice-pwd":
			if err := setICECredential(&f.pwd, name, value, 22, i+1); err != nil {
				return fragment{}, err
			}
		case "candidate":
			if len(val) > maxCandidateLen {
				return fragment{}, fmt.Errorf("%w: line %d: candidate longer than %d bytes", ErrBadFragment, i+1, maxCandidateLen)
			}
			if _, err := ice.UnmarshalCandidate(val); err != nil {
				return fragment{}, fmt.Errorf("%w: line %d: candidate: %v", ErrBadFragment, i+1, err)
			}
			f.candidates = append(f.candidates, val)
		case "end-of-candidates":
			f.endOfCands = true
		}
	}
	if (f.ufrag == "") != (f.pwd == "") {
		return fragment{}, fmt.Errorf("%w: ice-ufrag and ice-pwd must come together", ErrBadFragment)
	}
	return f, nil
}

func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

// iceString reports whether s is min to 256 ice-chars (RFC 8839 §5.4: ALPHA / DIGIT
// / "+" / "/"). Anything else could not be what the client's ICE agent uses, and
// must not reach the SDP the credentials are written into.
func iceString(s string, min int) bool {
	if len(s) < min || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// replaceICECredentials rewrites every ice-ufrag/ice-pwd line of an SDP, whatever its
// line ends; the result has CRLF line ends.
func replaceICECredentials(sdp, ufrag, pwd string) string {
	lines := sdpLines(sdp)
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

// localCredentials returns the first ice-ufrag and ice-pwd of an SDP, whatever its
// line ends.
func localCredentials(sdp string) (ufrag, pwd string) {
	for _, l := range sdpLines(sdp) {
		l = strings.TrimRight(l, " \t")
		switch {
		case ufrag == "" && strings.HasPrefix(l, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(l, "a=ice-ufrag:")
		case pwd == "" && strings.HasPrefix(l, "a=ice-pwd:"):
			pwd = strings.TrimPrefix(l, "a=ice-pwd:")
		}
	}
	return ufrag, pwd
}

// setICECredential checks the value of an ice-ufrag or ice-pwd attribute (name)
// on line, at least minLen characters of the ICE alphabet, and stores it in *dst;
// a second, different value is refused: a fragment carries one ICE session
// (BUNDLE).
func setICECredential(dst *string, name, value string, minLen, line int) error {
	if !iceString(value, minLen) {
		return fmt.Errorf("%w: line %d: %s must be %d to 256 letters, digits, + or /", ErrBadFragment, line, name, minLen)
	}
	if *dst != "" && *dst != value {
		return fmt.Errorf("%w: line %d: a second %s; one ICE session per fragment (BUNDLE)", ErrBadFragment, line, name)
	}
	*dst = value
	return nil
}
