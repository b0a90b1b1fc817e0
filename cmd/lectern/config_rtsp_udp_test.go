package main

import "testing"

// TestRTSPUDPPortPair: the RTSP server (gortsplib) takes an even RTP port and the
// next one for RTCP; another pair is reported with the other settings' errors, not
// at start.
func TestRTSPUDPPortPair(t *testing.T) {
	for _, tt := range []struct {
		name    string
		vars    map[string]string
		wantErr []string
	}{
		{"defaults", nil, nil},
		{"another pair", map[string]string{"LECTERN_RTSP_UDP_RTP_PORT": "9000", "LECTERN_RTSP_UDP_RTCP_PORT": "9001"}, nil},
		{"udp off", map[string]string{"LECTERN_RTSP_UDP_RTP_PORT": "0"}, nil},
		{"odd rtp port", map[string]string{"LECTERN_RTSP_UDP_RTP_PORT": "9001", "LECTERN_RTSP_UDP_RTCP_PORT": "9002"},
			[]string{"-rtsp-udp-rtp-port/LECTERN_RTSP_UDP_RTP_PORT: 9001 and -rtsp-udp-rtcp-port/LECTERN_RTSP_UDP_RTCP_PORT: 9002: want an even RTP port and the next one"}},
		{"rtcp not next", map[string]string{"LECTERN_RTSP_UDP_RTP_PORT": "9000", "LECTERN_RTSP_UDP_RTCP_PORT": "9100"},
			[]string{"want an even RTP port and the next one for RTCP"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(nil, env(tt.vars))
			checkErr(t, err, tt.wantErr)
		})
	}
}
