package main

import (
	"fmt"
)

// checkTURNSecret accepts "" (generated and persisted) or a secret long enough
// that its HMACs cannot be guessed.
func checkTURNSecret(v string) (string, error) {
	if v != "" && len(v) < 32 {
		return "", fmt.Errorf("is %d characters, need at least 32", len(v))
	}
	return v, nil
}

// checkTURN validates the embedded TURN settings together.
func (c *config) checkTURN() []error {
	var errs []error
	cert, key, tlsPort := settingName("turn-cert"), settingName("turn-key"), settingName("turn-tls-port")
	if (c.TURNCert == "") != (c.TURNKey == "") {
		errs = append(errs, fmt.Errorf("%s and %s: set both or neither", cert, key))
	}
	if c.TURNTLSPort > 0 && (c.TURNCert == "" || c.TURNKey == "") {
		errs = append(errs, fmt.Errorf("%s: %d needs %s and %s", tlsPort, c.TURNTLSPort, cert, key))
	}
	if c.TURNTLSPort == 0 && c.TURNCert != "" {
		errs = append(errs, fmt.Errorf("%s: set but %s is 0 (TURN over TLS is off)", cert, tlsPort))
	}
	if !c.TURN {
		return errs
	}
	port := settingName("turn-port")
	if c.TURNPort == c.UDPPort {
		errs = append(errs, fmt.Errorf("%s: %d is also %s", port, c.TURNPort, settingName("webrtc-udp-port")))
	}
	if c.TCPPort > 0 && c.TURNPort == c.TCPPort {
		errs = append(errs, fmt.Errorf("%s: %d is also %s", port, c.TURNPort, settingName("webrtc-tcp-port")))
	}
	if c.TURNTLSPort > 0 && c.TURNTLSPort == c.TURNPort {
		errs = append(errs, fmt.Errorf("%s: %d is also %s", tlsPort, c.TURNTLSPort, port))
	}
	return errs
}
