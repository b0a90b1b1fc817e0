package main

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/crypto/acme/autocert"
)

// acmeLetsEncrypt is the default ACME directory (Let's Encrypt's production one).
const acmeLetsEncrypt = autocert.DefaultACMEDirectory

// httpsOn reports whether the server serves HTTPS (certificate files or ACME).
func (c *config) httpsOn() bool { return c.TLSCert != "" || c.TLSKey != "" || len(c.ACMEDomains) > 0 }

// checkHTTPS checks the HTTPS settings together and derives the public URL from them
// when it was not given: https://<first ACME domain>, or https://<host of -https>.
func (c *config) checkHTTPS() []error {
	var errs []error
	cert, key, domain := settingName("tls-cert"), settingName("tls-key"), settingName("acme-domain")
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		errs = append(errs, fmt.Errorf("%s: required with %s", key, cert))
	case c.TLSCert == "" && c.TLSKey != "":
		errs = append(errs, fmt.Errorf("%s: required with %s", cert, key))
	}
	if len(c.ACMEDomains) == 0 {
		for _, s := range []struct {
			flag string
			set  bool
		}{{"acme-email", c.ACMEEmail != ""}, {"acme-ca", c.ACMECA != ""}, {"acme-directory", c.ACMEDirectory != acmeLetsEncrypt && c.ACMEDirectory != ""}} {
			if s.set {
				errs = append(errs, fmt.Errorf("%s: set but %s is empty", settingName(s.flag), domain))
			}
		}
	}
	if len(c.ACMEDomains) > 0 && c.ACMEDirectory == acmeLetsEncrypt {
		// Let's Encrypt issues for names in the public DNS only: say so now rather
		// than at the first visitor's handshake.
		for _, d := range c.ACMEDomains {
			if tld := specialUseTLD(d); tld != "" {
				errs = append(errs, fmt.Errorf("%s: %q is under %s, which is not public DNS: Let's Encrypt cannot issue for it (use a public name, -tls-cert files, or a private CA with %s)",
					domain, d, tld, settingName("acme-directory")))
			}
		}
	}
	if !c.httpsOn() {
		return errs
	}
	if samePort(c.HTTPAddr, c.HTTPSAddr) {
		errs = append(errs, fmt.Errorf("%s: %q uses the port of %s, which serves the redirect to HTTPS", settingName("https"), c.HTTPSAddr, settingName("http")))
	}
	switch {
	case c.PublicURL == "" && len(c.ACMEDomains) > 0:
		c.PublicURL = "https://" + c.ACMEDomains[0]
	case c.PublicURL == "" && c.HTTPSAddr != "":
		c.PublicURL = httpsURLForListenAddr(c.HTTPSAddr)
	case strings.HasPrefix(c.PublicURL, "http://"):
		errs = append(errs, fmt.Errorf("%s: %q is http:// but HTTPS is on (%s or %s): invitations would lead to the redirect, and browsers give the camera only to https:// pages",
			settingName("public-url"), c.PublicURL, cert, domain))
	}
	return errs
}

// checkACMEDomain accepts a host name a CA can validate over HTTP-01 or TLS-ALPN-01: a DNS
// name with at least one dot, not an IP address, not a wildcard, not localhost.
func checkACMEDomain(v string) error {
	d := strings.ToLower(strings.TrimSuffix(v, "."))
	switch {
	case strings.HasPrefix(d, "*."):
		return fmt.Errorf("%q is a wildcard: ACME over HTTP-01/TLS-ALPN-01 issues for exact names only; list each name", v)
	case isIPLiteral(d):
		return fmt.Errorf("%q is an IP address: ACME needs a host name (use -tls-cert files for an address)", v)
	case d == "localhost" || strings.HasSuffix(d, ".localhost"):
		return fmt.Errorf("%q is local: browsers already treat http://localhost as secure, and no CA issues for it", v)
	case !strings.Contains(d, "."):
		return fmt.Errorf("%q is not a public host name (no dot): a CA cannot reach it", v)
	case len(d) > 253:
		return fmt.Errorf("%q is longer than 253 characters", v)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("%q is not a host name (letters, digits and '-' between dots; write an international name in its xn-- form)", v)
		}
	}
	return nil
}

func isIPLiteral(h string) bool {
	_, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil
}

// specialUseTLD returns the special-use or private-use suffix a name is under (RFC 6761,
// RFC 8375, ICANN's .internal), or "".
func specialUseTLD(d string) string {
	d = "." + strings.ToLower(strings.TrimSuffix(d, "."))
	for _, s := range []string{".test", ".example", ".invalid", ".localhost", ".local", ".internal", ".home.arpa", ".lan", ".corp", ".home"} {
		if strings.HasSuffix(d, s) {
			return s
		}
	}
	return ""
}

func checkEmail(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || a.Address != v {
		return "", fmt.Errorf("%q is not an e-mail address (name@example.org)", v)
	}
	return v, nil
}

// checkACMEDirectory accepts an https:// URL: RFC 8555 requires HTTPS for ACME.
func checkACMEDirectory(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an https:// URL (ACME directories are served over HTTPS)", v)
	}
	return v, nil
}

// samePort reports whether two valid listen addresses use the same fixed port (0 lets
// the kernel choose and never clashes).
func samePort(a, b string) bool {
	_, pa, errA := net.SplitHostPort(a)
	_, pb, errB := net.SplitHostPort(b)
	return errA == nil && errB == nil && pa == pb && pa != "0"
}

// httpsURLForListenAddr derives an https:// base URL from a valid listen address (see
// baseURLForListenAddr).
func httpsURLForListenAddr(addr string) string { return baseURLForListenAddr("https", "443", addr) }
