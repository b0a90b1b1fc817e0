package rtsp

import (
	"errors"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"lectern/sfu"
)

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
			d, err := unmarshalSDP([]byte(tc.sdp))
			if tc.name == "aac without config" && errors.Is(err, ErrBadSDP) {
				return // gortsplib refuses the description whole
			}
			if err != nil {
				t.Fatal(err)
			}
			plans, skipped, err := planDescription(d)
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
	d, err := unmarshalSDP([]byte("v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=cam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADKw7ULBLQgAAAwACAAADAD0I,aO48gA==\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	plans, _, err := planDescription(d)
	if err != nil {
		t.Fatal(err)
	}
	want := "packetization-mode=1;profile-level-id=64000c;sprop-parameter-sets=Z2QADKw7ULBLQgAAAwACAAADAD0I,aO48gA=="
	if plans[0].codec.Fmtp != want || len(plans[0].sps) != 21 || len(plans[0].pps) != 4 {
		t.Fatalf("fmtp %q, sps % x, pps % x", plans[0].codec.Fmtp, plans[0].sps, plans[0].pps)
	}
}

func TestUnmarshalSDPRejects(t *testing.T) {
	for _, in := range []string{"", "hello", "v=0\r\nthis is not sdp\r\n", "v=0\r\nm=video\r\n", "v=0\r\nm=video x RTP/AVP 96\r\n", "v=0\r\ns=no media\r\n"} {
		if _, err := unmarshalSDP([]byte(in)); !errors.Is(err, ErrBadSDP) {
			t.Errorf("unmarshalSDP(%q): %v, want ErrBadSDP", in, err)
		}
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		url, session, pub, token string
		idx                      int
	}{
		{"rtsp://h:8554/lecture", "lecture", "", "", -1},
		{"rtsp://h/lecture/site-ha-noi?token=abc", "lecture", "site-ha-noi", "abc", -1},
		{"rtsp://h/lecture/a/b", "", "", "", -1},
	} {
		u, err := base.ParseURL(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		tg, err := parseTarget(u.Path, u.RawQuery)
		if tc.session == "" {
			if err == nil {
				t.Errorf("%s: accepted as %+v", tc.url, tg)
			}
			continue
		}
		if err != nil || tg.session != tc.session || tg.publication != tc.pub || tg.query.Get("token") != tc.token {
			t.Errorf("%s: %+v err %v", tc.url, tg, err)
		}
	}
}
