package main

import (
	"strings"
	"testing"
)

// TestHTTPSSettings: the HTTPS settings are checked together with the others, and the
// public URL follows HTTPS when it is on.
func TestHTTPSSettings(t *testing.T) {
	bad := []struct {
		name string
		args []string
		want []string
	}{
		{"cert without key", []string{"-tls-cert", "/etc/lectern/tls.crt"}, []string{"LECTERN_TLS_KEY: required with -tls-cert"}},
		{"key without cert", []string{"-tls-key", "/etc/lectern/tls.key"}, []string{"LECTERN_TLS_CERT: required with -tls-key"}},
		{"localhost", []string{"-acme-domain", "localhost"}, []string{"LECTERN_ACME_DOMAIN", `"localhost" is local`}},
		{"IP address", []string{"-acme-domain", "203.0.113.7"}, []string{"LECTERN_ACME_DOMAIN", "is an IP address"}},
		{"wildcard", []string{"-acme-domain", "*.example.org"}, []string{"is a wildcard"}},
		{"no dot", []string{"-acme-domain", "lectern"}, []string{"no dot"}},
		{"not a host name", []string{"-acme-domain", "lec_tern.example.org"}, []string{"is not a host name"}},
		{"private name with Let's Encrypt", []string{"-acme-domain", "lectern.test"}, []string{"Let's Encrypt cannot issue", "LECTERN_ACME_DIRECTORY"}},
		{"ACME settings without a domain", []string{"-acme-email", "ops@example.org", "-acme-ca", "/tmp/ca.pem", "-acme-directory", "https://ca.example.org/dir"},
			[]string{"-acme-email/LECTERN_ACME_EMAIL: set but -acme-domain", "-acme-ca/LECTERN_ACME_CA: set but", "-acme-directory/LECTERN_ACME_DIRECTORY: set but"}},
		{"bad e-mail", []string{"-acme-domain", "lectern.example.org", "-acme-email", "Ops <ops@example.org>"}, []string{"is not an e-mail address"}},
		{"directory over http", []string{"-acme-domain", "lectern.example.org", "-acme-directory", "http://ca.example.org/dir"}, []string{"is not an https:// URL"}},
		{"http public URL with HTTPS", []string{"-acme-domain", "lectern.example.org", "-public-url", "http://lectern.example.org"}, []string{"LECTERN_PUBLIC_URL", "is http:// but HTTPS is on"}},
		{"one port for both", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-http", ":8443", "-https", "0.0.0.0:8443"}, []string{"LECTERN_HTTPS", "uses the port of -http"}},
		{"bad https address", []string{"-https", "443"}, []string{"LECTERN_HTTPS", "is not a listen address"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, env(nil))
			checkErr(t, err, tt.want)
		})
	}

	// Every problem at once, with the others.
	_, err := parseConfig([]string{"-tls-key", "k.pem", "-acme-domain", "localhost,*.example.org", "-log-level", "loud"}, env(nil))
	checkErr(t, err, []string{"LECTERN_TLS_CERT", `"localhost"`, `"*.example.org"`, "LECTERN_LOG_LEVEL"})

	good := []struct {
		name      string
		args      []string
		publicURL string
	}{
		{"off by default", nil, "http://localhost:8080"},
		{"ACME", []string{"-acme-domain", "lectern.example.org,live.example.org"}, "https://lectern.example.org"},
		{"ACME with a private CA", []string{"-acme-domain", "lectern.test", "-acme-directory", "https://127.0.0.1:14000/dir", "-acme-ca", "/tmp/pebble.pem"}, "https://lectern.test"},
		{"files on 443", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}, "https://localhost"},
		{"files on another port", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-https", "127.0.0.1:8443"}, "https://127.0.0.1:8443"},
		{"files and ACME", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-acme-domain", "lectern.example.org"}, "https://lectern.example.org"},
		{"given public URL", []string{"-acme-domain", "lectern.example.org", "-public-url", "https://lectern.example.org:8443/"}, "https://lectern.example.org:8443"},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.args, nil)
			if c.PublicURL != tt.publicURL {
				t.Errorf("PublicURL = %q, want %q", c.PublicURL, tt.publicURL)
			}
			if on := c.httpsOn(); on != (tt.args != nil) {
				t.Errorf("httpsOn() = %v", on)
			}
		})
	}
}

func TestUsageMentionsHTTPS(t *testing.T) {
	u := config{}.usage()
	for _, want := range []string{"-acme-domain", "LECTERN_ACME_DOMAIN", "acme-v02.api.letsencrypt.org", "-tls-cert", ":443"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage does not mention %q", want)
		}
	}
}
