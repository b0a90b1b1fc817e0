package main

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv reading m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func mustParse(t *testing.T, args []string, vars map[string]string) config {
	t.Helper()
	c, err := parseConfig(args, env(vars))
	if err != nil {
		t.Fatalf("parseConfig(%q, %v): %v", args, vars, err)
	}
	return c
}

func defaultConfig() config {
	return config{
		HTTPAddr:       ":8080",
		UDPPort:        8189,
		TCPPort:        8189,
		DataDir:        "./data",
		CORSOrigins:    []string{"*"},
		ReconnectGrace: 30 * time.Second,
		ICETimeout:     15 * time.Second,
		MaxSubscribers: 500,
		Adaptation:     true,
		LogLevel:       "info",
		LogFormat:      "text",
		PublicURL:      "http://localhost:8080",

		WHEPConnectingPerToken: 8,
		WHEPConnectingPerIP:    32,

		HTTPIdleTimeout:    time.Minute,
		HTTPRequestTimeout: time.Minute,
		MaxConnsPerIP:      256,
		EventsPerToken:     32,
		EventsPerIP:        128,

		Record:          true,
		S3Bucket:        "lectern",
		S3CreateBucket:  true,
		SpoolMaxMB:      2048,
		SegmentDuration: 4 * time.Second,
		RTSPAddr:        ":8554",
		RTSPUDPRTPPort:  8000,
		RTSPUDPRTCPPort: 8001,
		ReplayCacheMB:   256,
		HTTPSAddr:       ":443",
		ACMEDirectory:   "https://acme-v02.api.letsencrypt.org/directory",

		ReplayDownloadsPerIP: 4,

		TURNPort:     3478,
		TURNPerIP:    20,
		TURNLifetime: 10 * time.Minute,
	}
}

func TestParseConfigDefaults(t *testing.T) {
	got := mustParse(t, nil, nil)
	if want := defaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

// allEnv sets every variable to a valid value that differs from its default.
var allEnv = map[string]string{
	"LECTERN_HTTP":            "127.0.0.1:9000",
	"LECTERN_PUBLIC_URL":      "https://lectern.example.edu/",
	"LECTERN_WEBRTC_UDP_PORT": "50000",
	"LECTERN_WEBRTC_TCP_PORT": "0",
	"LECTERN_WEBRTC_IP":       "127.0.0.1",
	"LECTERN_PUBLIC_IPS":      "203.0.113.7, 2001:db8::7",
	"LECTERN_ICE_SERVERS":     "stun:stun.example.org:3478,turns:turn.example.org:5349?transport=tcp",
	"LECTERN_TURN_USERNAME":   "lectern",
	"LECTERN_TURN_CREDENTIAL": "turn-password",
	"LECTERN_ADMIN_TOKEN":     "admin-token-0123456789",
	"LECTERN_TOKEN_SECRET":    "0123456789abcdef0123456789abcdef",
	"LECTERN_DATA_DIR":        "/var/lib/lectern",
	"LECTERN_CORS_ORIGINS":    "https://lms.example.edu,http://localhost:3000",
	"LECTERN_RECONNECT_GRACE": "1m30s",
	"LECTERN_ICE_TIMEOUT":     "20s",
	"LECTERN_MAX_SUBSCRIBERS": "64",
	"LECTERN_ADAPTATION":      "off",
	"LECTERN_LOG_LEVEL":       "DEBUG",
	"LECTERN_LOG_FORMAT":      "json",
	"LECTERN_DEBUG_ADDR":      "127.0.0.1:6060",

	"LECTERN_RECORD":             "off",
	"LECTERN_S3_ENDPOINT":        "https://s3.example.edu:9000/",
	"LECTERN_S3_BUCKET":          "lectures",
	"LECTERN_S3_ACCESS_KEY":      "lectern-access",
	"LECTERN_S3_SECRET_KEY":      "lectern-secret-key",
	"LECTERN_S3_REGION":          "eu-west-1",
	"LECTERN_S3_PATH_STYLE":      "on",
	"LECTERN_S3_CREATE_BUCKET":   "off",
	"LECTERN_S3_PREFIX":          "hanoi/",
	"LECTERN_SPOOL_MAX_MB":       "512",
	"LECTERN_SEGMENT_DURATION":   "6s",
	"LECTERN_REPLAY_REDIRECT":    "on",
	"LECTERN_REPLAY_CACHE_MB":    "64",
	"LECTERN_RTSP":               "127.0.0.1:9554",
	"LECTERN_RTSP_UDP_RTP_PORT":  "9000",
	"LECTERN_RTSP_UDP_RTCP_PORT": "9001",
	"LECTERN_RTSP_CERT":          "/etc/lectern/rtsp.crt",
	"LECTERN_RTSP_KEY":           "/etc/lectern/rtsp.key",
	"LECTERN_RTSP_SOURCES":       "abc123/cam1/site=rtsp://cam.example.edu/stream",
	"LECTERN_HTTPS":              "127.0.0.1:9443",
	"LECTERN_TLS_CERT":           "/etc/lectern/tls.crt",
	"LECTERN_TLS_KEY":            "/etc/lectern/tls.key",
	"LECTERN_ACME_DOMAIN":        "lectern.example.edu, live.example.edu",
	"LECTERN_ACME_EMAIL":         "ops@example.edu",
	"LECTERN_ACME_DIRECTORY":     "https://acme.example.edu/directory",
	"LECTERN_ACME_CA":            "/etc/lectern/acme-ca.pem",

	"LECTERN_RTSP_SOURCE_ALLOW":    "10.20.0.0/16,cam.example.edu",
	"LECTERN_RTSP_SOURCE_TRAINERS": "on",

	"LECTERN_HTTP_IDLE_TIMEOUT":    "75s",
	"LECTERN_HTTP_REQUEST_TIMEOUT": "20s",
	"LECTERN_MAX_CONNS_PER_IP":     "0",
	"LECTERN_EVENTS_PER_TOKEN":     "4",
	"LECTERN_EVENTS_PER_IP":        "0",
	"LECTERN_LOBBY_PUBLIC":         "on",

	"LECTERN_WHEP_CONNECTING_PER_TOKEN": "3",
	"LECTERN_WHEP_CONNECTING_PER_IP":    "0",
	"LECTERN_MAX_VIEWER_CONNECTIONS":    "12",

	"LECTERN_REPLAY_DOWNLOADS_PER_IP": "16",

	"LECTERN_TURN":                     "on",
	"LECTERN_TURN_PORT":                "3479",
	"LECTERN_TURN_TLS_PORT":            "5349",
	"LECTERN_TURN_CERT":                "/etc/lectern/turn.crt",
	"LECTERN_TURN_KEY":                 "/etc/lectern/turn.key",
	"LECTERN_TURN_SECRET":              "fedcba9876543210fedcba9876543210",
	"LECTERN_TURN_RELAY_IP":            "127.0.0.1",
	"LECTERN_TURN_ALLOCATIONS_PER_IP":  "5",
	"LECTERN_TURN_ALLOCATION_LIFETIME": "5m",

	"LECTERN_REDIS_URL":            "redis://redis.example.edu:6379/1",
	"LECTERN_NODE_ID":              "edge-hue-1",
	"LECTERN_REGION":               "centre",
	"LECTERN_NODE_MAX_SUBSCRIBERS": "400",
}

func TestParseConfigEnvOnly(t *testing.T) {
	got := mustParse(t, nil, allEnv)
	want := config{
		HTTPAddr:       "127.0.0.1:9000",
		UDPPort:        50000,
		TCPPort:        0,
		WebRTCIP:       "127.0.0.1",
		PublicIPs:      []string{"203.0.113.7", "2001:db8::7"},
		ICEServers:     []string{"stun:stun.example.org:3478", "turns:turn.example.org:5349?transport=tcp"},
		TURNUsername:   "lectern",
		TURNCredential: "turn-password",
		AdminToken:     "admin-token-0123456789",
		TokenSecret:    "0123456789abcdef0123456789abcdef",
		DataDir:        "/var/lib/lectern",
		CORSOrigins:    []string{"https://lms.example.edu", "http://localhost:3000"},
		ReconnectGrace: 90 * time.Second,
		ICETimeout:     20 * time.Second,
		MaxSubscribers: 64,
		Adaptation:     false,
		LogLevel:       "debug",
		LogFormat:      "json",
		PublicURL:      "https://lectern.example.edu",
		DebugAddr:      "127.0.0.1:6060",

		WHEPConnectingPerToken: 3,
		WHEPConnectingPerIP:    0,
		MaxViewerConnections:   12,

		HTTPIdleTimeout:    75 * time.Second,
		HTTPRequestTimeout: 20 * time.Second,
		MaxConnsPerIP:      0,
		EventsPerToken:     4,
		EventsPerIP:        0,

		Record:          false,
		S3Endpoint:      "https://s3.example.edu:9000",
		S3Bucket:        "lectures",
		S3AccessKey:     "lectern-access",
		S3SecretKey:     "lectern-secret-key",
		S3Region:        "eu-west-1",
		S3PathStyle:     true,
		S3CreateBucket:  false,
		S3Prefix:        "hanoi/",
		SpoolMaxMB:      512,
		SegmentDuration: 6 * time.Second,
		ReplayRedirect:  true,
		ReplayCacheMB:   64,
		LobbyPublic:     true,
		RTSPAddr:        "127.0.0.1:9554",
		RTSPUDPRTPPort:  9000,
		RTSPUDPRTCPPort: 9001,
		RTSPCert:        "/etc/lectern/rtsp.crt",
		RTSPKey:         "/etc/lectern/rtsp.key",
		RTSPSources:     []string{"abc123/cam1/site=rtsp://cam.example.edu/stream"},
		HTTPSAddr:       "127.0.0.1:9443",
		TLSCert:         "/etc/lectern/tls.crt",
		TLSKey:          "/etc/lectern/tls.key",
		ACMEDomains:     []string{"lectern.example.edu", "live.example.edu"},
		ACMEEmail:       "ops@example.edu",
		ACMEDirectory:   "https://acme.example.edu/directory",
		ACMECA:          "/etc/lectern/acme-ca.pem",

		RTSPSourceAllow:    []string{"10.20.0.0/16", "cam.example.edu"},
		RTSPSourceTrainers: true,

		ReplayDownloadsPerIP: 16,

		TURN: true, TURNPort: 3479, TURNTLSPort: 5349, TURNCert: "/etc/lectern/turn.crt", TURNKey: "/etc/lectern/turn.key",
		TURNSecret: "fedcba9876543210fedcba9876543210", TURNRelayIP: "127.0.0.1", TURNPerIP: 5, TURNLifetime: 5 * time.Minute,

		RedisURL: "redis://redis.example.edu:6379/1", NodeID: "edge-hue-1", Region: "centre", NodeMaxSubscribers: 400,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from env:\n got %+v\nwant %+v", got, want)
	}
}

// TestEveryFieldHasASetting fails when a config field has no row in settings() (setting
// every variable must change every field) or a row has no test value in allEnv.
func TestEveryFieldHasASetting(t *testing.T) {
	for _, s := range settings() {
		if _, ok := allEnv[s.env]; !ok {
			t.Errorf("allEnv has no test value for %s", s.env)
		}
	}
	got, def := reflect.ValueOf(mustParse(t, nil, allEnv)), reflect.ValueOf(defaultConfig())
	for i := range got.NumField() {
		if reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
			t.Errorf("config.%s is not changed by any LECTERN_* variable", got.Type().Field(i).Name)
		}
	}
}

func TestSettingsTable(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, s := range settings() {
		if flags[s.flag] || envs[s.env] {
			t.Errorf("duplicate setting -%s/%s", s.flag, s.env)
		}
		flags[s.flag], envs[s.env] = true, true
		if !strings.HasPrefix(s.env, "LECTERN_") || strings.HasPrefix(s.flag, "-") || s.help == "" || s.parse == nil {
			t.Errorf("setting %+v: want LECTERN_ variable, flag without -, help and parse", s)
		}
	}
}

func TestFlagBeatsEnv(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		vars  map[string]string
		check func(c config) bool
	}{
		{"flag over env", []string{"-http", ":9999"}, map[string]string{"LECTERN_HTTP": ":7777"},
			func(c config) bool { return c.HTTPAddr == ":9999" && c.PublicURL == "http://localhost:9999" }},
		{"env over default", nil, map[string]string{"LECTERN_HTTP": ":7777"},
			func(c config) bool { return c.HTTPAddr == ":7777" }},
		{"flag with = form", []string{"-webrtc-udp-port=4000"}, map[string]string{"LECTERN_WEBRTC_UDP_PORT": "5000"},
			func(c config) bool { return c.UDPPort == 4000 }},
		{"double dash flag", []string{"--max-subscribers", "7"}, nil,
			func(c config) bool { return c.MaxSubscribers == 7 }},
		{"flag hides a bad env value", []string{"-reconnect-grace", "5s"}, map[string]string{"LECTERN_RECONNECT_GRACE": "abc"},
			func(c config) bool { return c.ReconnectGrace == 5*time.Second }},
		{"empty flag over env", []string{"-cors-origins="}, map[string]string{"LECTERN_CORS_ORIGINS": "https://a.example"},
			func(c config) bool { return len(c.CORSOrigins) == 0 }},
		{"empty env is unset", nil, map[string]string{"LECTERN_DATA_DIR": ""},
			func(c config) bool { return c.DataDir == "./data" }},
		{"list flag replaces env list", []string{"-public-ip", "198.51.100.1"}, map[string]string{"LECTERN_PUBLIC_IPS": "203.0.113.7"},
			func(c config) bool { return reflect.DeepEqual(c.PublicIPs, []string{"198.51.100.1"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := mustParse(t, tt.args, tt.vars); !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestManyErrorsReportedTogether(t *testing.T) {
	args := []string{"-webrtc-udp-port", "70000", "-log-level", "verbose"}
	vars := map[string]string{
		"LECTERN_RECONNECT_GRACE": "abc",
		"LECTERN_ICE_TIMEOUT":     "10m",
		"LECTERN_PUBLIC_IPS":      "1.2.3.4,not-an-ip,1.2.3.400",
		"LECTERN_MAX_SUBSCRIBERS": "many",
		"LECTERN_CORS_ORIGINS":    "https://ok.example,https://bad.example/path",
		"LECTERN_ADMIN_TOKEN":     "short",
		"LECTERN_HTTP":            "8080",
	}
	_, err := parseConfig(args, env(vars))
	if err == nil {
		t.Fatal("parseConfig accepted bad settings")
	}
	for _, want := range []string{
		"-webrtc-udp-port/LECTERN_WEBRTC_UDP_PORT: 70000 is not a port (1-65535)",
		`-log-level/LECTERN_LOG_LEVEL: "verbose" is not one of debug, info, warn, error`,
		`-reconnect-grace/LECTERN_RECONNECT_GRACE: "abc" is not a duration`,
		"-ice-timeout/LECTERN_ICE_TIMEOUT: 10m0s is out of range (1s-2m0s)",
		`-public-ip/LECTERN_PUBLIC_IPS: "not-an-ip" is not an IP address`,
		`-public-ip/LECTERN_PUBLIC_IPS: "1.2.3.400" is not an IP address`,
		`-max-subscribers/LECTERN_MAX_SUBSCRIBERS: "many" is not a number`,
		`-cors-origins/LECTERN_CORS_ORIGINS: "https://bad.example/path" is not an origin`,
		"-admin-token/LECTERN_ADMIN_TOKEN: is 5 characters, need at least 16",
		`-http/LECTERN_HTTP: "8080" is not a listen address`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q; got:\n%v", want, err)
		}
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 10 {
		t.Errorf("got %d joined errors, want 10 (one per bad setting or list entry):\n%v", n, err)
	}
}

func TestLists(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want []string // PublicIPs
	}{
		{"unset", nil, nil, nil},
		{"trimmed", nil, map[string]string{"LECTERN_PUBLIC_IPS": " 203.0.113.7 ,\t2001:db8::1 "}, []string{"203.0.113.7", "2001:db8::1"}},
		{"empty entries dropped", nil, map[string]string{"LECTERN_PUBLIC_IPS": ",203.0.113.7,, ,198.51.100.1,"}, []string{"203.0.113.7", "198.51.100.1"}},
		{"only commas", nil, map[string]string{"LECTERN_PUBLIC_IPS": " , ,"}, nil},
		{"repeated flag appends", []string{"-public-ip", "203.0.113.7", "-public-ip", "198.51.100.1,192.0.2.1"}, nil,
			[]string{"203.0.113.7", "198.51.100.1", "192.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustParse(t, tt.args, tt.vars).PublicIPs; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PublicIPs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTURNCredentials(t *testing.T) {
	const turn, stun = "turn:turn.example.org:3478", "stun:stun.example.org"
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr []string // fragments; nil = valid
	}{
		{"no turn no credentials", map[string]string{"LECTERN_ICE_SERVERS": stun}, nil},
		{"turn with both", map[string]string{"LECTERN_ICE_SERVERS": turn, "LECTERN_TURN_USERNAME": "u", "LECTERN_TURN_CREDENTIAL": "p"}, nil},
		{"turns with both", map[string]string{"LECTERN_ICE_SERVERS": "turns:turn.example.org", "LECTERN_TURN_USERNAME": "u", "LECTERN_TURN_CREDENTIAL": "p"}, nil},
		{"turn without either", map[string]string{"LECTERN_ICE_SERVERS": stun + "," + turn}, []string{
			"-turn-username/LECTERN_TURN_USERNAME: required", "-turn-credential/LECTERN_TURN_CREDENTIAL: required"}},
		{"turn without credential", map[string]string{"LECTERN_ICE_SERVERS": turn, "LECTERN_TURN_USERNAME": "u"}, []string{
			"-turn-credential/LECTERN_TURN_CREDENTIAL: required with a turn: or turns: URL in -ice-server/LECTERN_ICE_SERVERS"}},
		{"turn without username", map[string]string{"LECTERN_ICE_SERVERS": turn, "LECTERN_TURN_CREDENTIAL": "p"}, []string{
			"-turn-username/LECTERN_TURN_USERNAME: required"}},
		{"credentials without turn", map[string]string{"LECTERN_ICE_SERVERS": stun, "LECTERN_TURN_USERNAME": "u", "LECTERN_TURN_CREDENTIAL": "p"}, []string{
			"-turn-username/LECTERN_TURN_USERNAME: set but", "-turn-credential/LECTERN_TURN_CREDENTIAL: set but"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(nil, env(tt.vars))
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		grace   time.Duration
		timeout time.Duration
		wantErr string
	}{
		{"defaults", nil, 30 * time.Second, 15 * time.Second, ""},
		{"grace zero", map[string]string{"LECTERN_RECONNECT_GRACE": "0s"}, 0, 15 * time.Second, ""},
		{"grace max", map[string]string{"LECTERN_RECONNECT_GRACE": "10m"}, 10 * time.Minute, 15 * time.Second, ""},
		{"timeout bounds", map[string]string{"LECTERN_ICE_TIMEOUT": "2m"}, 30 * time.Second, 2 * time.Minute, ""},
		{"compound", map[string]string{"LECTERN_ICE_TIMEOUT": "1m500ms"}, 30 * time.Second, time.Minute + 500*time.Millisecond, ""},
		{"grace too long", map[string]string{"LECTERN_RECONNECT_GRACE": "10m1s"}, 0, 0, "-reconnect-grace/LECTERN_RECONNECT_GRACE: 10m1s is out of range (0s-10m0s)"},
		{"grace negative", map[string]string{"LECTERN_RECONNECT_GRACE": "-1s"}, 0, 0, "is out of range"},
		{"grace not a duration", map[string]string{"LECTERN_RECONNECT_GRACE": "abc"}, 0, 0, `"abc" is not a duration`},
		{"bare number", map[string]string{"LECTERN_RECONNECT_GRACE": "30"}, 0, 0, `"30" is not a duration (e.g. 30s, 2m)`},
		{"timeout too short", map[string]string{"LECTERN_ICE_TIMEOUT": "999ms"}, 0, 0, "-ice-timeout/LECTERN_ICE_TIMEOUT: 999ms is out of range (1s-2m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(nil, env(tt.vars))
			if tt.wantErr != "" {
				checkErr(t, err, []string{tt.wantErr})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ReconnectGrace != tt.grace || c.ICETimeout != tt.timeout {
				t.Errorf("grace, timeout = %v, %v; want %v, %v", c.ReconnectGrace, c.ICETimeout, tt.grace, tt.timeout)
			}
		})
	}
}

// TestValues covers each setting's own checks: one variable set, the rest default.
func TestValues(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		value   string
		wantErr string // fragment; "" = valid
	}{
		{"udp port min", "LECTERN_WEBRTC_UDP_PORT", "1", ""},
		{"udp port zero", "LECTERN_WEBRTC_UDP_PORT", "0", "0 is not a port (1-65535)"},
		{"tcp port zero disables", "LECTERN_WEBRTC_TCP_PORT", "0", ""},
		{"tcp port negative", "LECTERN_WEBRTC_TCP_PORT", "-1", "-1 is not a port (0-65535)"},
		{"max subscribers too many", "LECTERN_MAX_SUBSCRIBERS", "10001", "10001 is not a subscriber limit (1-10000)"},
		{"http host and port", "LECTERN_HTTP", "0.0.0.0:80", ""},
		{"http ipv6", "LECTERN_HTTP", "[::1]:8080", ""},
		{"http named port", "LECTERN_HTTP", ":http", `port "http" is not a number`},
		{"public ip v6", "LECTERN_PUBLIC_IPS", "2001:db8::1", ""},
		{"public ip unspecified", "LECTERN_PUBLIC_IPS", "0.0.0.0", "cannot be announced"},
		{"public ip zone", "LECTERN_PUBLIC_IPS", "fe80::1%eth0", "has a zone"},
		{"public ip with port", "LECTERN_PUBLIC_IPS", "203.0.113.7:8189", "is not an IP address"},
		{"stun host", "LECTERN_ICE_SERVERS", "stun:stun.l.google.com:19302", ""},
		{"stun no port", "LECTERN_ICE_SERVERS", "stun:stun.example.org", ""},
		{"stun ipv6", "LECTERN_ICE_SERVERS", "stun:[2001:db8::1]:3478", ""},
		{"stun ipv6 without brackets", "LECTERN_ICE_SERVERS", "stun:2001:db8::1", "goes in brackets"},
		{"stuns ipv4", "LECTERN_ICE_SERVERS", "stuns:192.0.2.1:5349", ""},
		{"http scheme", "LECTERN_ICE_SERVERS", "https://stun.example.org", "is not a stun:, stuns:, turn: or turns: URL"},
		{"no scheme", "LECTERN_ICE_SERVERS", "stun.example.org:3478", "is not a stun:"},
		{"slashes", "LECTERN_ICE_SERVERS", "stun://stun.example.org", "without //"},
		{"no host", "LECTERN_ICE_SERVERS", "stun:", "is not a host name"},
		{"bad port", "LECTERN_ICE_SERVERS", "stun:stun.example.org:99999", "port \"99999\" is not in 1-65535"},
		{"bad host", "LECTERN_ICE_SERVERS", "stun:stun example.org", "is not a host name"},
		{"stun with query", "LECTERN_ICE_SERVERS", "stun:stun.example.org?transport=udp", "only turn: and turns: URLs take a query"},
		{"turn bad transport", "LECTERN_ICE_SERVERS", "turn:t.example.org?transport=sctp", "only transport=udp or transport=tcp"},
		{"cors star", "LECTERN_CORS_ORIGINS", "*", ""},
		{"cors with port", "LECTERN_CORS_ORIGINS", "http://localhost:3000", ""},
		{"cors trailing slash", "LECTERN_CORS_ORIGINS", "https://lms.example.edu/", "has a path"},
		{"cors no scheme", "LECTERN_CORS_ORIGINS", "lms.example.edu", "is not an origin"},
		{"cors ftp", "LECTERN_CORS_ORIGINS", "ftp://lms.example.edu", "is not an origin"},
		{"cors star and origin", "LECTERN_CORS_ORIGINS", "*,https://a.example", `"*" cannot be combined`},
		{"public url with prefix", "LECTERN_PUBLIC_URL", "https://example.edu/lectern", ""},
		{"public url no scheme", "LECTERN_PUBLIC_URL", "lectern.example.edu", "is not an http:// or https:// URL"},
		{"public url query", "LECTERN_PUBLIC_URL", "https://lectern.example.edu?a=b", "must not contain"},
		{"admin token 16", "LECTERN_ADMIN_TOKEN", "0123456789abcdef", ""},
		{"admin token space", "LECTERN_ADMIN_TOKEN", "0123456789 abcdef", "must not contain spaces"},
		{"token secret short", "LECTERN_TOKEN_SECRET", "0123456789abcdef0123456789abcde", "is 31 characters, need at least 32"},
		{"data dir blank", "LECTERN_DATA_DIR", " ", "must not be empty"},
		{"log level upper case", "LECTERN_LOG_LEVEL", "WARN", ""},
		{"log format", "LECTERN_LOG_FORMAT", "logfmt", `"logfmt" is not one of text, json`},
		{"record off", "LECTERN_RECORD", "OFF", ""},
		{"record maybe", "LECTERN_RECORD", "maybe", `"maybe" is not on or off`},
		{"s3 endpoint without credentials", "LECTERN_S3_ENDPOINT", "http://minio:9000", "LECTERN_S3_ACCESS_KEY: required with"},
		{"s3 endpoint without scheme", "LECTERN_S3_ENDPOINT", "minio:9000", "is not http://host[:port]"},
		{"s3 endpoint with bucket path", "LECTERN_S3_ENDPOINT", "http://minio:9000/lectern", "must not contain a path"},
		{"s3 endpoint bad port", "LECTERN_S3_ENDPOINT", "http://minio:99999", "is not in 1-65535"},
		{"s3 key without endpoint", "LECTERN_S3_SECRET_KEY", "x", "set but -s3-endpoint/LECTERN_S3_ENDPOINT is empty"},
		{"bucket upper case", "LECTERN_S3_BUCKET", "Lectern", "is not a bucket name"},
		{"bucket too short", "LECTERN_S3_BUCKET", "ab", "is not a bucket name"},
		{"spool too small", "LECTERN_SPOOL_MAX_MB", "8", "8 is not a size in MiB (16-1048576)"},
		{"segment too long", "LECTERN_SEGMENT_DURATION", "1m", "out of range"},
		{"replay cache off", "LECTERN_REPLAY_CACHE_MB", "0", ""},
		{"replay cache negative", "LECTERN_REPLAY_CACHE_MB", "-1", "-1 is not a size in MiB (0-65536)"},
		{"replay cache too large", "LECTERN_REPLAY_CACHE_MB", "65537", "65537 is not a size in MiB (0-65536)"},
		{"replay downloads unlimited", "LECTERN_REPLAY_DOWNLOADS_PER_IP", "0", ""},
		{"replay downloads negative", "LECTERN_REPLAY_DOWNLOADS_PER_IP", "-1", "-1 is not a download limit (0-10000)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(nil, env(map[string]string{tt.env: tt.value}))
			if tt.wantErr == "" {
				checkErr(t, err, nil)
				return
			}
			checkErr(t, err, []string{tt.wantErr})
		})
	}
}

func TestSecretsNotEchoed(t *testing.T) {
	_, err := parseConfig(nil, env(map[string]string{
		"LECTERN_TOKEN_SECRET": "short-secret-xyz",
		"LECTERN_ADMIN_TOKEN":  "admintok",
	}))
	if err == nil {
		t.Fatal("short secrets accepted")
	}
	for _, secret := range []string{"short-secret-xyz", "admintok"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q reveals the secret %q", err, secret)
		}
	}
}

func TestPublicURLDerived(t *testing.T) {
	tests := []struct{ http, want string }{
		{":8080", "http://localhost:8080"},
		{"0.0.0.0:9000", "http://localhost:9000"},
		{"[::]:9000", "http://localhost:9000"},
		{"127.0.0.1:80", "http://127.0.0.1"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"[::1]:80", "http://[::1]"},
		{"lectern.local:8080", "http://lectern.local:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.http, func(t *testing.T) {
			if got := mustParse(t, []string{"-http", tt.http}, nil).PublicURL; got != tt.want {
				t.Errorf("PublicURL = %q, want %q", got, tt.want)
			}
		})
	}
	c := mustParse(t, []string{"-http", ":9000", "-public-url", "https://lectern.example.edu/"}, nil)
	if c.PublicURL != "https://lectern.example.edu" {
		t.Errorf("given PublicURL = %q, want it kept without the trailing /", c.PublicURL)
	}
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantHelp bool
		want     string
	}{
		{"help", []string{"-help"}, true, ""},
		{"h", []string{"-h"}, true, ""},
		{"unknown flag", []string{"-htp", ":80"}, false, "flag provided but not defined: -htp"},
		{"missing value", []string{"-http"}, false, "flag needs an argument: -http"},
		{"positional argument", []string{"serve"}, false, `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, env(nil))
			if errors.Is(err, flag.ErrHelp) != tt.wantHelp {
				t.Fatalf("error %v: ErrHelp = %v, want %v", err, !tt.wantHelp, tt.wantHelp)
			}
			if !tt.wantHelp {
				checkErr(t, err, []string{tt.want})
			}
		})
	}
}

func TestUsageMentionsEverySetting(t *testing.T) {
	u := config{}.usage()
	for _, s := range settings() {
		if !strings.Contains(u, s.env) || !strings.Contains(u, "-"+s.flag+" ") {
			t.Errorf("usage does not mention -%s and %s", s.flag, s.env)
		}
	}
	for _, want := range []string{"FLAG", "ENVIRONMENT", "DEFAULT", ":8080", "8189", "./data", "generated"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage does not mention %q:\n%s", want, u)
		}
	}
}

// checkErr fails unless err mentions every fragment of want; with no want, err must be nil.
func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q; got:\n%v", w, err)
		}
	}
}
