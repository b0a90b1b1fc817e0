package main

// HTTPS. Browsers give the camera and microphone only to secure origins (https://, or
// http://localhost), so a studio or a classroom that speaks needs the server over TLS.
// With -tls-cert/-tls-key or -acme-domain, the API, WHIP/WHEP, pages and replays are
// served on -https, every answer there carries HSTS, and -http only redirects to HTTPS
// (and answers the ACME CA's HTTP-01 challenges). Certificates come from files (re-read
// when they change, e.g. after certbot renews them) or from an ACME CA
// (golang.org/x/crypto/acme/autocert), cached in <data-dir>/acme.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// hstsValue tells browsers to use HTTPS for this host for a year (RFC 6797). Not for
// subdomains: the rest of an organisation's domain is not ours to decide.
const hstsValue = "max-age=31536000"

// httpsFront is what HTTPS adds around the HTTP layer.
type httpsFront struct {
	log       *slog.Logger
	tlsConfig *tls.Config
	files     *certFiles        // nil without -tls-cert
	acme      *autocert.Manager // nil without -acme-domain
	acmeHTTP  *http.Transport   // the ACME client's, nil without ACME

	redirectPort string // port of the public URL ("" for 443), put in redirect Locations
	publicHost   string // host of the public URL
	redirect     *http.Server
	redirectLn   net.Listener
}

// newHTTPSFront prepares HTTPS from the configuration, or returns nil when it is off.
// Certificate files are read now, so that a bad file stops the start with a clear error.
func newHTTPSFront(cfg config, log *slog.Logger) (*httpsFront, error) {
	if !cfg.httpsOn() {
		return nil, nil
	}
	f := &httpsFront{log: log}
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Scheme == "https" {
		f.redirectPort, f.publicHost = u.Port(), u.Hostname()
	}
	if cfg.TLSCert != "" {
		files, err := loadCertFiles(cfg.TLSCert, cfg.TLSKey, log)
		if err != nil {
			return nil, err
		}
		f.files = files
	}
	protos := []string{"h2", "http/1.1"}
	if len(cfg.ACMEDomains) > 0 {
		if err := f.setupACME(cfg); err != nil {
			return nil, err
		}
		protos = append(protos, acme.ALPNProto) // TLS-ALPN-01 challenges arrive on this listener
	}
	f.tlsConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: f.certificate,
	}
	return f, nil
}

// setupACME makes the ACME certificate manager: the CA's terms are accepted (the
// operator chose the CA with -acme-directory), the account key and certificates are
// cached in <data-dir>/acme, and only the configured names get certificates (a
// handshake naming any other host must not make us ask the CA).
func (f *httpsFront) setupACME(cfg config) error {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if cfg.ACMECA != "" {
		pem, err := os.ReadFile(cfg.ACMECA)
		if err != nil {
			return fmt.Errorf("acme CA: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("acme CA: %s holds no PEM certificate", cfg.ACMECA)
		}
	}
	f.acmeHTTP = http.DefaultTransport.(*http.Transport).Clone()
	f.acmeHTTP.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	cache := filepath.Join(cfg.DataDir, "acme")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return fmt.Errorf("acme cache: %w", err)
	}
	f.acme = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cache),
		HostPolicy: autocert.HostWhitelist(cfg.ACMEDomains...),
		Email:      cfg.ACMEEmail,
		Client: &acme.Client{
			DirectoryURL: cfg.ACMEDirectory,
			HTTPClient:   &http.Client{Transport: f.acmeHTTP},
			UserAgent:    "lectern",
		},
	}
	return nil
}

// certificate chooses the certificate of a handshake: ACME for its names and for the
// CA's TLS-ALPN-01 challenges, the files for every other name (or when ACME is off).
func (f *httpsFront) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	challenge := slices.Equal(hello.SupportedProtos, []string{acme.ALPNProto})
	configured := f.configuredName(hello.ServerName)
	if f.acme != nil && (f.files == nil || challenge || configured) {
		cert, err := f.acme.GetCertificate(hello)
		if err != nil && configured && !challenge {
			// Any other failed handshake (a scanner naming another host or no host)
			// is already logged by the HTTP server; this one means the CA refused us.
			f.log.Error("cannot obtain the ACME certificate", "server_name", hello.ServerName, "err", err)
		}
		return cert, err
	}
	return f.files.get()
}

// configuredName reports whether name is one of the ACME names.
func (f *httpsFront) configuredName(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	return f.acme != nil && name != "" && f.acme.HostPolicy(context.Background(), name) == nil
}

// serveOver wraps the listener of the HTTP layer in TLS, and the handler with HSTS.
func (f *httpsFront) serveOver(ln net.Listener, srv *http.Server) net.Listener {
	srv.Handler = hsts(srv.Handler)
	return tls.NewListener(ln, f.tlsConfig)
}

// hsts adds Strict-Transport-Security to every answer over TLS, except to a host that
// is an IP address or localhost: browsers ignore it there (RFC 6797 §8.1), and on
// localhost it would pin every local development server to HTTPS.
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			host := hostOnly(r.Host)
			if !isIPLiteral(host) && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
				w.Header().Set("Strict-Transport-Security", hstsValue)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// startRedirect serves -http: ACME HTTP-01 challenges, and for everything else a
// permanent redirect to the same host and path over HTTPS (308 keeps the method, so a
// WHIP client configured with http:// still lands on the right resource).
func (f *httpsFront) startRedirect(ln net.Listener, wg *sync.WaitGroup, failed chan<- error) {
	var h http.Handler = http.HandlerFunc(f.redirectToHTTPS)
	if f.acme != nil {
		challenges := f.acme.HTTPHandler(h)
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") && r.Host != hostOnly(r.Host) {
				// The manager checks the Host header against the ACME names as it
				// is; "name:port" (a CA or proxy that writes the port) is the same name.
				r = r.Clone(r.Context())
				r.Host = hostOnly(r.Host)
			}
			challenges.ServeHTTP(w, r)
		})
	}
	// Its answers are a few hundred bytes: every phase of a connection is short.
	f.redirect = &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(f.log.Handler(), slog.LevelWarn),
	}
	f.redirectLn = ln
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.redirect.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case failed <- fmt.Errorf("http redirect server: %w", err):
			default:
			}
		}
	}()
}

func (f *httpsFront) redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	host := hostOnly(r.Host)
	if f.files == nil && !f.configuredName(host) {
		// With ACME certificates only, HTTPS works for the ACME names alone: someone
		// who typed the address (or another name) goes to the public one.
		host = f.publicHost
	}
	if host == "" { // HTTP/1.0 without Host, and no public host: nowhere to send it
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"this server answers over HTTPS; send a Host header or use https://","status":400}`+"\n")
		return
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if f.redirectPort != "" {
		host += ":" + f.redirectPort
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// shutdown stops the redirect server and drops the ACME client's idle connections.
func (f *httpsFront) shutdown(ctx context.Context) {
	if f.redirect != nil {
		if err := f.redirect.Shutdown(ctx); err != nil {
			_ = f.redirect.Close()
		}
	}
	if f.acmeHTTP != nil {
		f.acmeHTTP.CloseIdleConnections()
	}
}

// hostOnly is the host of a Host header, without port or IPv6 brackets.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// certFiles is a certificate and key read from PEM files, read again when either file
// changes (checked at most once a minute, at a handshake), so a renewal by another
// tool needs no restart. A renewed pair that does not load leaves the old one in use.
type certFiles struct {
	certPath, keyPath string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // modification times and sizes the certificate was read at
	checkedAt time.Time
}

// certCheckEvery bounds how often the files are looked at.
const certCheckEvery = time.Minute

func loadCertFiles(certPath, keyPath string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certPath: certPath, keyPath: keyPath, log: log}
	stamp, err := c.stampNow()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s with key %s: %w", certPath, keyPath, err)
	}
	c.cert, c.stamp, c.checkedAt = &cert, stamp, time.Now()
	return c, nil
}

func (c *certFiles) stampNow() (string, error) {
	var b strings.Builder
	for _, p := range []string{c.certPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("tls certificate: %w", err)
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String(), nil
}

func (c *certFiles) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checkedAt) < certCheckEvery {
		return c.cert, nil
	}
	c.checkedAt = time.Now()
	stamp, err := c.stampNow()
	if err != nil || stamp == c.stamp {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		// A renewal writes the two files one after the other: the pair may match
		// again at the next look.
		c.log.Warn("tls certificate files changed but do not load; still serving the previous certificate", "cert", c.certPath, "err", err)
		return c.cert, nil
	}
	c.cert, c.stamp = &cert, stamp
	c.log.Info("tls certificate reloaded", "cert", c.certPath)
	return c.cert, nil
}

// listenHTTP opens the listener of the HTTP layer: -http, or with HTTPS on, -https
// over TLS, with the redirect server started on -http.
func (a *app) listenHTTP() (net.Listener, error) {
	f, err := newHTTPSFront(a.cfg, a.log)
	if err != nil {
		return nil, err
	}
	if f == nil {
		ln, err := a.listenTCP(a.cfg.HTTPAddr) // conncap.go: capped per client address
		if err != nil {
			return nil, fmt.Errorf("http listen %s: %w", a.cfg.HTTPAddr, err)
		}
		return ln, nil
	}
	ln, err := a.listenTCP(a.cfg.HTTPSAddr) // conncap.go: capped per client address
	if err != nil {
		return nil, fmt.Errorf("https listen %s: %w", a.cfg.HTTPSAddr, err)
	}
	redirectLn, err := a.listenTCP(a.cfg.HTTPAddr) // the same cap: a redirect is a connection too
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("http listen %s (redirect to HTTPS): %w", a.cfg.HTTPAddr, err)
	}
	f.startRedirect(redirectLn, &a.wg, a.failed)
	a.https = f
	a.log.Info("redirecting HTTP to HTTPS", "http", f.redirectLn.Addr().String(), "https", ln.Addr().String())
	return f.serveOver(ln, a.http), nil
}
