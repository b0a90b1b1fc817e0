package rtsp

import (
	"errors"
	"regexp"
	"strings"
)

// errMalformed is wrapped by every refusal of a request as not RTSP.
var errMalformed = errors.New("malformed RTSP message")

// isCtl reports the control characters (RFC 2326 §15.1 CTL) other than horizontal tab.
func isCtl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

// truncate shortens s for error messages.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Patterns of credentials in a request, status or header line: a query parameter
// that names a secret, the user information of a URL, and what follows an HTTP
// authentication scheme.
var (
	secretParam  = regexp.MustCompile(`(?i)([?&;][a-z0-9_.-]*(?:token|pass|pwd|secret|key|auth|sig)[a-z0-9_.-]*=)[^&;#\s]*`)
	urlUserInfo  = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://)[^/?#@\s]*@`)
	authSchemeRe = regexp.MustCompile(`(?i)\b(basic|bearer|digest)\s+\S.*$`)
	// jwtShape is a signed token wherever it stands (Lectern's tokens are JWTs),
	// e.g. pasted into the path.
	jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
)

// redactLine returns a line a peer sent with its credentials replaced, for logs and
// error messages: the whole value of an Authorization header (however malformed the
// line), secret-looking query parameters (token=…), user information in URLs,
// anything shaped like a JWT, and whatever follows "Basic", "Bearer" or "Digest".
// Tokens travel in all of these places, and a line that fails to parse is exactly
// the one that gets logged.
func redactLine(line string) string {
	name, _, hasColon := strings.Cut(line, ":")
	if !hasColon {
		name, _, _ = strings.Cut(line, " ")
	}
	if strings.Contains(strings.ToLower(name), "authorization") {
		if hasColon {
			return name + ": REDACTED"
		}
		return name + " REDACTED"
	}
	line = secretParam.ReplaceAllString(line, "${1}REDACTED")
	line = urlUserInfo.ReplaceAllString(line, "${1}REDACTED@")
	line = jwtShape.ReplaceAllString(line, "REDACTED")
	return authSchemeRe.ReplaceAllString(line, "${1} REDACTED")
}
