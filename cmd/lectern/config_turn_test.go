package main

import (
	"testing"
)

func TestTURNSettings(t *testing.T) {
	c := mustParse(t, []string{"-turn", "on", "-turn-port", "3479", "-turn-relay-ip", "10.0.0.5"}, map[string]string{"LECTERN_TURN_SECRET": "0123456789abcdef0123456789abcdef"})
	if !c.TURN || c.TURNPort != 3479 || c.TURNRelayIP != "10.0.0.5" || c.TURNSecret != "0123456789abcdef0123456789abcdef" {
		t.Errorf("parsed %+v", c)
	}
	_, err := parseConfig([]string{"-turn", "on", "-turn-port", "8189", "-turn-tls-port", "443", "-turn-cert", "c.pem", "-turn-secret", "short"}, env(nil))
	checkErr(t, err, []string{
		"-turn-port/LECTERN_TURN_PORT: 8189 is also -webrtc-udp-port",
		"-turn-cert/LECTERN_TURN_CERT and -turn-key/LECTERN_TURN_KEY: set both or neither",
		"-turn-tls-port/LECTERN_TURN_TLS_PORT: 443 needs",
		"-turn-secret/LECTERN_TURN_SECRET: is 5 characters",
	})
}
