package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// healthcheckUsage is printed for `lectern healthcheck -help`.
const healthcheckUsage = `Usage: lectern healthcheck [-ready] [-flag value ...]

Asks the server started with the same settings (flags or LECTERN_* variables) whether it
is alive: GET /healthz (with -ready, /readyz) on its listen address, over HTTPS when
HTTPS is on. Exits 0 when it answers 200, 1 otherwise. For container health checks
(the image has no curl).
`

// healthcheckTimeout bounds the whole check (a container runtime kills a check that
// hangs; this one answers first, with the reason).
const healthcheckTimeout = 5 * time.Second

// healthcheck is `lectern healthcheck`: it returns the exit code.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	path := "/healthz"
	var settingsArgs []string
	for _, a := range args {
		switch a {
		case "-ready", "--ready":
			path = "/readyz"
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, healthcheckUsage)
			return 0
		default:
			settingsArgs = append(settingsArgs, a)
		}
	}
	cfg, err := parseConfig(settingsArgs, getenv)
	if err != nil {
		// Exit 1, not 2: Docker reserves 2 in health checks.
		fmt.Fprintf(stderr, "lectern healthcheck: configuration problems:\n%v\n", err)
		return 1
	}
	target, client := healthcheckTarget(cfg)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "lectern healthcheck: %v\n", err)
		return 1
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "lectern healthcheck: GET %s%s: %v\n", target, path, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "lectern healthcheck: GET %s%s: %s %s\n", target, path, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintf(stdout, "lectern healthcheck: GET %s%s: %s\n", target, path, resp.Status)
	return 0
}

// healthcheckTarget returns the base URL of the server's own listener and the client
// that reaches it. A wildcard listen address is reached on loopback.
//
// Over HTTPS the certificate is not verified: the check dials its own server by address,
// while the certificate names the public host and may chain to a private CA; what is
// checked is that the server answers, not who it is. It sends the first ACME name as
// SNI, since the ACME certificate manager only answers handshakes that name a host.
func healthcheckTarget(cfg config) (string, *http.Client) {
	addr, scheme := cfg.HTTPAddr, "http"
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if cfg.httpsOn() {
		addr, scheme = cfg.HTTPSAddr, "https"
		tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // see above: liveness of our own listener
		if len(cfg.ACMEDomains) > 0 {
			tc.ServerName = cfg.ACMEDomains[0]
		}
		tr.TLSClientConfig = tc
	}
	host, port, _ := net.SplitHostPort(addr) // checked by the config
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if err == nil && ip.Is6() {
			host = "::1"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), &http.Client{Transport: tr, Timeout: healthcheckTimeout}
}
