package rtsp

import (
	"bufio"
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"lectern/sfu"
)

// FuzzRequestChecks feeds arbitrary bytes to gortsplib's request parser and what it
// accepts to Lectern's checks (validateRequest, the URL mapping, the presented
// token): nothing panics, and a request the checks let through carries no control
// character and no CSeq the server could not echo (issue 9).
func FuzzRequestChecks(f *testing.F) {
	for _, seed := range []string{
		"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"DESCRIBE rtsp://h:8554/lecture?token=abc RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
		"ANNOUNCE rtsp://h/lecture RTSP/1.0\r\nCSeq: 3\r\nContent-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=x\r\n",
		"SETUP rtsp://h/lecture/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
		"OPTIONS * RTSP/1.0\r\nCSeq: 1\rX-Injected: yes\r\n\r\n",
		"OPTIONS * RTSP/1.0\r\nCSeq: 1 X-Injected: yes\r\n\r\n",
		"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nAuthorization : Basic dXNlcjpwYXNz\r\n\r\n",
		"DESCRIBE rtsp://h/x?token=t extra RTSP/1.0\r\n\r\n",
		"ANNOUNCE rtsp://h/x RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		var req base.Request
		if err := req.Unmarshal(br); err != nil {
			return
		}
		if req.URL != nil {
			_, _ = parseTarget(req.URL.Path, req.URL.RawQuery)
		}
		_ = presentedToken(req.Header, url.Values{})
		if validateRequest(&req) != nil {
			return
		}
		for k, vs := range req.Header {
			for _, s := range append([]string{k}, vs...) {
				if strings.IndexFunc(s, isCtl) >= 0 {
					t.Fatalf("accepted a control character in %q", s)
				}
			}
		}
		if cseq, ok := req.Header["CSeq"]; ok && !validCSeq(cseq[0]) {
			t.Fatalf("accepted CSeq %q", cseq[0])
		}
	})
}

// FuzzAnnounceSDP: whatever SDP a publisher announces, parsing it (gortsplib) and
// planning its media (Lectern) never panics, and a plan forwards only H.264 video
// and supported audio.
func FuzzAnnounceSDP(f *testing.F) {
	for _, seed := range []string{
		h264SDP,
		"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n",
		"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n" +
			"a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n",
		"v=0\r\ns=x\r\n",
		"hello",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		desc, err := unmarshalSDP(body)
		if err != nil {
			return
		}
		plans, _, err := planDescription(desc)
		if err != nil {
			return
		}
		for _, p := range plans {
			if p.index < 0 || p.index >= len(desc.Medias) {
				t.Fatalf("plan names media %d of %d", p.index, len(desc.Medias))
			}
			if p.kind == sfu.KindVideo && p.codec.MimeType != sfu.MimeH264 {
				t.Fatalf("forwards video %s", p.codec.MimeType)
			}
		}
	})
}

// FuzzAuthorization: the credentials a client presents (Authorization header, token
// query) never panic their parser; the redactor hides a presented password.
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
		tok := presentedToken(base.Header{"Authorization": {v}}, url.Values{"token": {"q"}})
		if tok == "" {
			t.Fatal("no token at all, though the query has one")
		}
		red := redactLine("Authorization: " + v)
		if red != "Authorization: REDACTED" {
			t.Fatalf("redacted to %q", red)
		}
	})
}
