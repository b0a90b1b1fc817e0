package rtsp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
)

// Limits on what a peer may send in one message: anything larger is not an RTSP
// peer Lectern talks to, and reading it would let a client hold memory.
const (
	maxLineLen    = 4096
	maxHeaders    = 64
	maxBodySize   = 64 << 10
	rtspVersion   = "RTSP/1.0"
	interleavedID = '$'
)

// errMalformed is wrapped by every parse error of an RTSP message.
var errMalformed = errors.New("malformed RTSP message")

// header holds an RTSP message's header fields (RFC 2326 §12), canonicalised the way
// net/textproto does ("Cseq", "Www-Authenticate"); names are written as given.
type header map[string][]string

func (h header) get(name string) string {
	if v := h[textproto.CanonicalMIMEHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h header) values(name string) []string { return h[textproto.CanonicalMIMEHeaderKey(name)] }

// request is an RTSP request (RFC 2326 §6).
type request struct {
	method string
	url    string // as sent: an absolute rtsp:// URL, or "*"
	header header
	body   []byte
}

// response is an RTSP response (RFC 2326 §7). Its header fields are written in the
// order given, with the names as given.
type response struct {
	status int
	reason string // defaults to the standard reason phrase
	fields [][2]string
	body   []byte
	header header // set when read by a client
}

func (r *response) add(name, value string) { r.fields = append(r.fields, [2]string{name, value}) }

// RTSP status codes used by Lectern (RFC 2326 §7.1.1).
const (
	statusOK                   = 200
	statusBadRequest           = 400
	statusUnauthorized         = 401
	statusForbidden            = 403
	statusNotFound             = 404
	statusMethodNotAllowed     = 405
	statusNotAcceptable        = 406
	statusRequestTooLarge      = 413
	statusUnsupportedMedia     = 415
	statusSessionNotFound      = 454
	statusMethodNotValidHere   = 455
	statusUnsupportedTransport = 461
	statusInternalError        = 500
	statusNotImplemented       = 501
	statusServiceUnavailable   = 503
)

func reasonPhrase(code int) string {
	switch code {
	case statusOK:
		return "OK"
	case statusBadRequest:
		return "Bad Request"
	case statusUnauthorized:
		return "Unauthorized"
	case statusForbidden:
		return "Forbidden"
	case statusNotFound:
		return "Not Found"
	case statusMethodNotAllowed:
		return "Method Not Allowed"
	case statusNotAcceptable:
		return "Not Acceptable"
	case statusRequestTooLarge:
		return "Request Entity Too Large"
	case statusUnsupportedMedia:
		return "Unsupported Media Type"
	case statusSessionNotFound:
		return "Session Not Found"
	case statusMethodNotValidHere:
		return "Method Not Valid in This State"
	case statusUnsupportedTransport:
		return "Unsupported Transport"
	case statusNotImplemented:
		return "Not Implemented"
	case statusServiceUnavailable:
		return "Service Unavailable"
	}
	return "Internal Server Error"
}

// readLine reads one CRLF- (or LF-) terminated line of at most maxLineLen bytes. The
// reader's buffer must be at least that large.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: line longer than %d bytes", errMalformed, maxLineLen)
	}
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(line), "\r\n")
	// A CR (or any control character) inside a line is never RTSP; echoed in a
	// response (CSeq, a URL in Content-Base) it would inject header fields.
	if i := strings.IndexFunc(s, isCtl); i >= 0 {
		return "", fmt.Errorf("%w: control character %q in line %q", errMalformed, s[i], truncate(redactLine(s), 64))
	}
	return s, nil
}

// isCtl reports the control characters (RFC 2326 §15.1 CTL) other than horizontal tab.
func isCtl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

// readHeader reads header lines up to the empty line that ends them.
func readHeader(br *bufio.Reader) (header, error) {
	h := header{}
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if line == "" {
			return h, nil
		}
		if n == maxHeaders {
			return nil, fmt.Errorf("%w: more than %d header fields", errMalformed, maxHeaders)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("%w: bad header line %q", errMalformed, truncate(redactLine(line), 64))
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		h[key] = append(h[key], strings.TrimSpace(value))
	}
}

// readBody reads the body announced by Content-Length.
func readBody(br *bufio.Reader, h header) ([]byte, error) {
	cl := h.get("Content-Length")
	if cl == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(cl)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: bad Content-Length %q", errMalformed, truncate(cl, 32))
	}
	if n > maxBodySize {
		return nil, fmt.Errorf("%w: body of %d bytes, at most %d", errTooLarge, n, maxBodySize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return body, nil
}

var errTooLarge = fmt.Errorf("%w: too large", errMalformed)

// readRequest reads one request. It returns an error wrapping errMalformed for input
// that is not RTSP.
func readRequest(br *bufio.Reader) (*request, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[2] != rtspVersion || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("%w: bad request line %q", errMalformed, truncate(redactLine(line), 64))
	}
	for _, c := range parts[0] {
		if c < 'A' || c > 'Z' && c != '_' {
			return nil, fmt.Errorf("%w: bad method %q", errMalformed, truncate(redactLine(parts[0]), 32))
		}
	}
	h, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	body, err := readBody(br, h)
	if err != nil {
		return nil, err
	}
	return &request{method: parts[0], url: parts[1], header: h, body: body}, nil
}

// readResponse reads one response (client side).
func readResponse(br *bufio.Reader) (*response, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	version, rest, _ := strings.Cut(line, " ")
	codeStr, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if version != rtspVersion || err != nil || code < 100 || code > 999 {
		return nil, fmt.Errorf("%w: bad status line %q", errMalformed, truncate(redactLine(line), 64))
	}
	h, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	body, err := readBody(br, h)
	if err != nil {
		return nil, err
	}
	return &response{status: code, reason: reason, header: h, body: body}, nil
}

// marshal encodes the request; fields are written in the order given.
func (r *request) marshal(fields [][2]string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", r.method, r.url, rtspVersion)
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
	}
	if len(r.body) > 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("\r\n")
	b.Write(r.body)
	return b.Bytes()
}

// marshal encodes the response.
func (r *response) marshal() []byte {
	var b bytes.Buffer
	reason := r.reason
	if reason == "" {
		reason = reasonPhrase(r.status)
	}
	fmt.Fprintf(&b, "%s %d %s\r\n", rtspVersion, r.status, reason)
	for _, f := range r.fields {
		fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
	}
	if len(r.body) > 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("\r\n")
	b.Write(r.body)
	return b.Bytes()
}

// readInterleaved reads an interleaved binary frame (RFC 2326 §10.12) whose '$' was
// already peeked, into buf (grown if needed). It returns the channel and payload.
func readInterleaved(br *bufio.Reader, buf []byte) (channel byte, payload []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[2])<<8 | int(hdr[3])
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		return 0, nil, err
	}
	return hdr[1], buf, nil
}

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
