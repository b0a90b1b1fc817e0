package rtsp

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"lectern/sfu"
)

func TestParseTransports(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     transport
		err      bool
	}{
		{"tcp interleaved", "RTP/AVP/TCP;unicast;interleaved=2-3", transport{tcp: true, interleaved: [2]int{2, 3}}, false},
		{"udp ports", "RTP/AVP;unicast;client_port=5000-5001", transport{interleaved: [2]int{-1, -1}, clientPorts: [2]int{5000, 5001}}, false},
		{"single port", "RTP/AVP/UDP;unicast;client_port=5000", transport{interleaved: [2]int{-1, -1}, clientPorts: [2]int{5000, 5001}}, false},
		{"record mode", `RTP/AVP/TCP;unicast;interleaved=0-1;mode="RECORD"`, transport{tcp: true, interleaved: [2]int{0, 1}, record: true}, false},
		{"first usable of a list", "RTP/SAVP;unicast,RTP/AVP/TCP;interleaved=0-1", transport{tcp: true, interleaved: [2]int{0, 1}}, false},
		{"multicast refused", "RTP/AVP;multicast;port=5000-5001", transport{}, true},
		{"bad port", "RTP/AVP;client_port=x-y", transport{}, true},
		{"empty", "", transport{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTransports(tc.in)
			if tc.err {
				if !errors.Is(err, errTransport) {
					t.Fatalf("err %v, want errTransport", err)
				}
				return
			}
			if err != nil || got[0] != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	tr := transport{tcp: true, interleaved: [2]int{0, 1}, hasSSRC: true, ssrc: 0xabc, record: true}
	if s := tr.String(); s != "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=00000ABC;mode=record" {
		t.Fatalf("String: %s", s)
	}
}

func TestPlanMedias(t *testing.T) {
	const head = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=cam\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name    string
		sdp     string
		locals  []string
		codecs  []string
		skipped int
		err     error
	}{
		{"h264 and aac", head + "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAH9oB,aM48gA==\r\na=control:trackID=0\r\n" +
			"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n",
			[]string{"video", "audio"}, []string{sfu.MimeH264, sfu.MimeAAC}, 0, nil},
		{"static g711", head + "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 0 RTP/AVP 0\r\n", []string{"video", "audio"}, []string{sfu.MimeH264, sfu.MimePCMU}, 0, nil},
		{"pcma by rtpmap", head + "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n", []string{"audio"}, []string{sfu.MimePCMA}, 0, nil},
		{"opus", head + "m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", []string{"audio"}, []string{sfu.MimeOpus}, 0, nil},
		{"second video is the screen, third skipped", head + strings.Repeat("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n", 3),
			[]string{"video", "screen"}, []string{sfu.MimeH264, sfu.MimeH264}, 1, nil},
		{"unsupported audio skipped", head + "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 0 RTP/AVP 14\r\nm=application 0 RTP/AVP 107\r\n",
			[]string{"video"}, []string{sfu.MimeH264}, 2, nil},
		{"aac without config", head + "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 mode=AAC-hbr;sizelength=13\r\n", nil, nil, 1, ErrUnsupportedCodec},
		{"h265 refused", head + "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\nm=audio 0 RTP/AVP 0\r\n", nil, nil, 0, ErrUnsupportedCodec},
		{"mjpeg refused", head + "m=video 0 RTP/AVP 26\r\n", nil, nil, 0, ErrUnsupportedCodec},
		{"h264 mode 2 refused", head + "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2\r\n", nil, nil, 0, ErrUnsupportedCodec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parseSDP([]byte(tc.sdp))
			if err != nil {
				t.Fatal(err)
			}
			plans, skipped, err := planMedias(d)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || len(plans) != len(tc.locals) || len(skipped) != tc.skipped {
				t.Fatalf("plans %+v skipped %v err %v", plans, skipped, err)
			}
			for i, p := range plans {
				if p.local != tc.locals[i] || p.codec.MimeType != tc.codecs[i] {
					t.Fatalf("plan %d: %s %s", i, p.local, p.codec.MimeType)
				}
			}
		})
	}
}

func TestH264FmtpFromSprop(t *testing.T) {
	d, err := parseSDP([]byte("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAH9oB,aM48gA==\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	plans, _, err := planMedias(d)
	if err != nil {
		t.Fatal(err)
	}
	want := "packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH9oB,aM48gA=="
	if plans[0].codec.Fmtp != want || len(plans[0].sps) != 6 || len(plans[0].pps) != 4 {
		t.Fatalf("fmtp %q, sps % x, pps % x", plans[0].codec.Fmtp, plans[0].sps, plans[0].pps)
	}
}

func TestParseSDPRejects(t *testing.T) {
	for _, in := range []string{"", "hello", "v=0\r\nthis is not sdp\r\n", "v=0\r\nm=video\r\n", "v=0\r\nm=video x RTP/AVP 96\r\n", "v=0\r\ns=no media\r\n"} {
		if _, err := parseSDP([]byte(in)); !errors.Is(err, ErrBadSDP) {
			t.Errorf("parseSDP(%q): %v, want ErrBadSDP", in, err)
		}
	}
}

func TestReadRequest(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		err      error
	}{
		{"options", "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", nil},
		{"with body", "ANNOUNCE rtsp://h/s RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nv=0", nil},
		{"http", "GET / HTTP/1.1\r\n\r\n", errMalformed},
		{"lowercase method", "options * RTSP/1.0\r\n\r\n", errMalformed},
		{"bad header", "OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n", errMalformed},
		{"negative length", "OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n", errMalformed},
		{"too large", "OPTIONS * RTSP/1.0\r\nContent-Length: 70000\r\n\r\n", errTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := readRequest(bufio.NewReaderSize(strings.NewReader(tc.in), maxLineLen))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || req.header.get("cseq") == "" {
				t.Fatalf("req %+v err %v", req, err)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		url, session, pub, token string
		idx                      int
	}{
		{"rtsp://h:8554/lecture", "lecture", "", "", -1},
		{"rtsp://h/lecture/site-ha-noi?token=abc", "lecture", "site-ha-noi", "abc", -1},
		{"rtsp://h/lecture/trackID=1", "lecture", "", "", 1},
		{"rtsp://h/lecture?token=abc/trackID=0", "lecture", "", "abc", 0},
		{"rtsp://h/lecture/site-a/trackID=2?token=abc", "lecture", "site-a", "abc", 2},
		{"rtsp://h/lecture/site-a?token=abc/trackID=3", "lecture", "site-a", "abc", 3},
	} {
		pq, err := urlPathQuery(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		base, idx := splitTrackControl(pq)
		tg, err := parseTarget(base)
		if err != nil || tg.session != tc.session || tg.publication != tc.pub || tg.query.Get("token") != tc.token || idx != tc.idx {
			t.Errorf("%s: %+v idx %d err %v", tc.url, tg, idx, err)
		}
	}
}

// TestDigestAuth checks the RFC 2617 §3.5 example.
func TestDigestAuth(t *testing.T) {
	a := clientAuth{user: "Mufasa", pass: "Circle Of Life"}
	err := a.challenge([]string{`Basic realm="x"`, `Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`})
	if err != nil || a.scheme != "digest" || !a.qop {
		t.Fatalf("challenge: %+v %v", a, err)
	}
	a.cnonce = func() string { return "0a4f113b" }
	h := a.header("GET", "/dir/index.html")
	for _, want := range []string{`response="6629fae49393a05397450978507c4ef1"`, `nc=00000001`, `opaque="5ccc069c403ebaf9f0171e9517f40e41"`, `username="Mufasa"`} {
		if !strings.Contains(h, want) {
			t.Fatalf("header %s lacks %s", h, want)
		}
	}
	b := clientAuth{user: "u", pass: "p"}
	if err := b.challenge([]string{`Basic realm="cam"`}); err != nil || b.header("DESCRIBE", "rtsp://x") != "Basic dTpw" {
		t.Fatalf("basic: %v %q", err, b.header("DESCRIBE", "rtsp://x"))
	}
	if err := b.challenge([]string{`Negotiate abc`}); !errors.Is(err, errAuthScheme) {
		t.Fatalf("unknown scheme: %v", err)
	}
}
