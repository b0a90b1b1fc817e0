package main

import (
	"strings"
	"testing"
)

// TestRTSPSourcePolicySettings: -rtsp-source-allow takes networks, addresses and
// host names and reports bad entries; trainers may add sources only with an
// allow-list; a source configured at start may not name a loopback or link-local
// address unless the allow-list lists it (issue 9, 10e).
func TestRTSPSourcePolicySettings(t *testing.T) {
	c := mustParse(t, []string{"-rtsp-source-allow", "10.20.0.0/16,192.0.2.7,cam1.lan,*.cams.example", "-rtsp-source-trainers", "on"}, nil)
	if len(c.RTSPSourceAllow) != 4 || !c.RTSPSourceTrainers || c.rtspSourceAllow().Empty() {
		t.Fatalf("parsed %+v", c)
	}
	if d := mustParse(t, nil, nil).rtspSourceAllow(); !d.Empty() {
		t.Fatalf("default allow-list %v", d)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad entries", []string{"-rtsp-source-allow", "10.0.0.0/33,not a host!"}, []string{"-rtsp-source-allow/LECTERN_RTSP_SOURCE_ALLOW", "10.0.0.0/33", "not a host!"}},
		{"trainers without an allow-list", []string{"-rtsp-source-trainers", "on"}, []string{"-rtsp-source-trainers/LECTERN_RTSP_SOURCE_TRAINERS: needs -rtsp-source-allow"}},
		{"loopback source", []string{"-rtsp-source", "abc/cam/site=rtsp://127.0.0.1:554/x"}, []string{"-rtsp-source/LECTERN_RTSP_SOURCES: 127.0.0.1", "loopback"}},
		{"metadata source", []string{"-rtsp-source", "abc/cam/site=rtsp://169.254.169.254/x"}, []string{"link-local"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, env(nil))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
	mustParse(t, []string{"-rtsp-source", "abc/cam/site=rtsp://127.0.0.1:554/x", "-rtsp-source-allow", "127.0.0.0/8"}, nil)
}
