package rtsp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
)

// FuzzReadRequest feeds arbitrary bytes to the request parser: it must not panic,
// must stay within its limits (line length, header count, body size), and what it
// accepts must carry no control character the server could echo (issue 9).
func FuzzReadRequest(f *testing.F) {
	for _, seed := range []string{
		"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"DESCRIBE rtsp://h:8554/lecture?token=abc RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
		"ANNOUNCE rtsp://h/lecture RTSP/1.0\r\nCSeq: 3\r\nContent-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=x\r\n",
		"SETUP rtsp://h/lecture/trackID=0 RTSP/1.0\nCSeq: 4\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\n\n",
		"OPTIONS * RTSP/1.0\r\nCSeq: 1\rX-Injected: yes\r\n\r\n",
		"OPTIONS * RTSP/1.0\r\nAuthorization : Basic dXNlcjpwYXNz\r\n\r\n",
		"DESCRIBE rtsp://h/x?token=t extra RTSP/1.0\r\n\r\n",
		"ANNOUNCE rtsp://h/x RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
		"ANNOUNCE rtsp://h/x RTSP/1.0\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"$\x00\x00\x04abcd",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), maxLineLen)
		for range 4 { // a few pipelined requests
			req, err := readRequest(br)
			if err != nil {
				if !errors.Is(err, errMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v is neither malformed input nor the end of it", err)
				}
				return
			}
			if req.method == "" || strings.IndexFunc(req.method, func(r rune) bool { return (r < 'A' || r > 'Z') && r != '_' }) >= 0 {
				t.Fatalf("accepted method %q", req.method)
			}
			if len(req.body) > maxBodySize || len(req.header) > maxHeaders {
				t.Fatalf("body %d bytes, %d headers: past the limits", len(req.body), len(req.header))
			}
			for _, s := range append([]string{req.url}, flatten(req.header)...) {
				if strings.IndexFunc(s, isCtl) >= 0 {
					t.Fatalf("accepted a control character in %q", s)
				}
			}
			// What handlers derive from the URL must not panic either.
			if pq, err := urlPathQuery(req.url); err == nil {
				base, _ := splitTrackControl(pq)
				_, _ = parseTarget(base)
			}
			_ = presentedToken(req, url.Values{})
			_ = validCSeq(req.header.get("CSeq"))
		}
	})
}

func flatten(h header) []string {
	var out []string
	for k, vs := range h {
		out = append(out, k)
		out = append(out, vs...)
	}
	return out
}

// FuzzReadResponse: what a camera (or anything a source connects to) answers never
// panics the client's parser, and an error is malformed input or the end of it.
func FuzzReadResponse(f *testing.F) {
	for _, seed := range []string{
		"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n",
		"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc\", qop=\"auth\"\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nv=0\r\n",
		"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n",
		"RTSP/1.0 99999999999999999999 X\r\n\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), maxLineLen)
		res, err := readResponse(br)
		if err != nil {
			if !errors.Is(err, errMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v is neither malformed input nor the end of it", err)
			}
			// A source's last error is a fixed phrase, whatever was answered.
			if txt := sourceErrorText(err); txt != "not an RTSP server" && txt != "connection closed by the peer" {
				t.Fatalf("last error %q for %v", txt, err)
			}
			return
		}
		if res.status < 100 || res.status > 999 || len(res.body) > maxBodySize {
			t.Fatalf("accepted status %d, body %d", res.status, len(res.body))
		}
		var a clientAuth
		a.user, a.pass = "u", "p"
		if a.challenge(res.header.values("WWW-Authenticate")) == nil {
			_ = a.header("DESCRIBE", "rtsp://cam/x")
		}
		_, _ = parseTransports(res.header.get("Transport"))
	})
}

// FuzzParseTransports: the Transport header parser never panics and keeps ports and
// channels in range.
func FuzzParseTransports(f *testing.F) {
	for _, seed := range []string{
		"RTP/AVP/TCP;unicast;interleaved=0-1",
		"RTP/AVP;unicast;client_port=5000-5001;mode=record",
		"RTP/AVP;multicast,RTP/AVP/TCP;interleaved=2",
		"RTP/AVP;unicast;client_port=70000;ssrc=zzzz",
		"RTP/AVP;server_port=-1-2",
		",,,",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		list, err := parseTransports(v)
		if err != nil {
			if !errors.Is(err, errTransport) {
				t.Fatalf("error %v does not match errTransport", err)
			}
			return
		}
		for _, tr := range list {
			for _, p := range append(tr.clientPorts[:], tr.serverPorts[:]...) {
				if p < 0 || p > 65536 {
					t.Fatalf("port %d from %q", p, v)
				}
			}
			_ = tr.String()
		}
	})
}

// FuzzAuthorization: the credentials a client presents (Authorization header, token
// query) and a camera's challenge parameters never panic their parsers; the
// redactor hides a presented Basic password.
func FuzzAuthorization(f *testing.F) {
	for _, seed := range []string{
		"Basic dXNlcjpwYXNz",
		"Bearer abc.def.ghi",
		"basic !!!notbase64",
		"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"rtsp://h/x\", response=\"0\"",
		`Digest realm="unterminated`,
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		req := &request{header: header{"Authorization": {v}}}
		tok := presentedToken(req, url.Values{"token": {"q"}})
		if tok == "" {
			t.Fatal("no token at all, though the query has one")
		}
		_ = parseAuthParams(v)
		var a clientAuth
		if a.challenge([]string{v}) == nil {
			_ = a.header("SETUP", "rtsp://h/x")
		}
		red := redactLine("Authorization: " + v)
		if red != "Authorization: REDACTED" {
			t.Fatalf("redacted to %q", red)
		}
	})
}
