package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"lectern/internal/testenv"
)

// The HTTPS tests run the real server (newApp, start) on loopback with a name that is
// not localhost (lectern.test): certificates from files made here by a test CA, or from
// a real ACME server (Pebble) that validates the name against Lectern's own listener.

// tlsTestHost is the name the tests serve; it resolves to 127.0.0.1 through each
// client's own dialer (Go clients), --host-resolver-rules (Chromium) or a DNS stub
// (Pebble).
const tlsTestHost = "lectern.test"

// tlsApp is a Lectern started for an HTTPS test, with the ports it serves on.
type tlsApp struct {
	*app
	httpPort, httpsPort int
	admin               string
	args                []string // the flags it was started with (for `lectern healthcheck`)
	stop                func()   // shuts it down; once
}

const tlsTestAdmin = "tls-test-admin-token-0123"

// startTLSApp starts Lectern on 127.0.0.1 with HTTPS on, from the given extra flags
// (certificate files or ACME), and shuts it down at cleanup.
func startTLSApp(t *testing.T, dataDir string, httpPort, httpsPort int, extra ...string) *tlsApp {
	t.Helper()
	args := append([]string{"-http", "127.0.0.1:" + strconv.Itoa(httpPort), "-https", "127.0.0.1:" + strconv.Itoa(httpsPort),
		"-public-url", fmt.Sprintf("https://%s:%d", tlsTestHost, httpsPort)}, extra...)
	ta := startLectern(t, dataDir, args...)
	ta.httpPort, ta.httpsPort = httpPort, httpsPort
	return ta
}

// startLectern starts Lectern on loopback (WebRTC on 127.0.0.1, no RTSP, no recording)
// with the given flags, and shuts it down at cleanup.
func startLectern(t *testing.T, dataDir string, extra ...string) *tlsApp {
	t.Helper()
	ta := &tlsApp{admin: tlsTestAdmin}
	args := append([]string{"-webrtc-ip", "127.0.0.1", "-webrtc-udp-port", strconv.Itoa(freePort(t, "udp")), "-webrtc-tcp-port", "0",
		"-rtsp", "off", "-record", "off", "-data-dir", dataDir, "-admin-token", ta.admin}, extra...)
	ta.args = args
	cfg, err := parseConfig(args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ta.app = a
	ta.stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.shutdown(ctx)
	})
	t.Cleanup(ta.stop)
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	return ta
}

// testLogWriter sends the server's warnings to the test log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client returns an HTTP client that trusts roots, reaches every name on 127.0.0.1,
// and does not follow redirects (the tests look at them).
func tlsTestClient(t *testing.T, roots *x509.CertPool) *http.Client {
	t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Lectern test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue writes a leaf certificate for names (and 127.0.0.1) and its key as PEM files in
// dir, and returns their paths and the certificate.
func (ca *testCA) issue(t *testing.T, dir, prefix string, serial int64, names ...string) (certPath, keyPath string, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, prefix+"cert.pem"), filepath.Join(dir, prefix+"key.pem")
	writeFile(t, certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return certPath, keyPath, leaf
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// spkiHash is what Chromium's --ignore-certificate-errors-spki-list takes: the
// base64 SHA-256 of a certificate's public key.
func spkiHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// servedLeaf returns the certificate the server presents for name.
func servedLeaf(t *testing.T, port int, name string) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		&tls.Config{ServerName: name, InsecureSkipVerify: true}) // looked at, then verified by the caller
	if err != nil {
		t.Fatalf("TLS handshake for %s: %v", name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// TestHTTPSWithCertificateFiles: with -tls-cert/-tls-key the API answers over HTTPS
// (HTTP/2, HSTS) with the files' certificate, -http redirects every request to the same
// host and path over HTTPS, and renewed files are picked up without a restart.
func TestHTTPSWithCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certPath, keyPath, first := ca.issue(t, dir, "", 2, tlsTestHost)
	ta := startTLSApp(t, filepath.Join(dir, "data"), freePort(t, "tcp"), freePort(t, "tcp"), "-tls-cert", certPath, "-tls-key", keyPath)
	client := tlsTestClient(t, ca.pool())
	base := fmt.Sprintf("https://%s:%d", tlsTestHost, ta.httpsPort)

	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Errorf("GET /healthz: %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != hstsValue {
		t.Errorf("Strict-Transport-Security = %q, want %q", got, hstsValue)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(first.SerialNumber) != 0 {
		t.Errorf("served certificate serial %v, want %v", got, first.SerialNumber)
	}
	// The API works over it, with a token.
	req, _ := http.NewRequest("POST", base+"/api/sessions", strings.NewReader(`{"title":"Bài giảng qua HTTPS"}`))
	req.Header.Set("Authorization", "Bearer "+ta.admin)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create a session over HTTPS: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Plain HTTP redirects, keeping host, path, query and method.
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, fmt.Sprintf("http://%s:%d/studio/abc?token=xyz", tlsTestHost, ta.httpPort), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := base + "/studio/abc?token=xyz"
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("%s over HTTP: %d Location %q, want 308 to %q", method, resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS sent over plain HTTP (RFC 6797 §7.2 forbids it)")
		}
	}

	// A renewal replaces the files: the next handshake after the check interval gets it.
	_, _, renewed := ca.issue(t, dir, "", 3, tlsTestHost)
	ta.https.files.mu.Lock()
	ta.https.files.checkedAt = time.Time{} // as if a minute had passed
	ta.https.files.mu.Unlock()
	if got := servedLeaf(t, ta.httpsPort, tlsTestHost).SerialNumber; got.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("after renewal the server presents serial %v, want %v", got, renewed.SerialNumber)
	}
}

// TestHTTPSRefusesABadKeyPair: files that do not load stop the start with a clear error.
func TestHTTPSRefusesABadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certPath, _, _ := ca.issue(t, dir, "a-", 2, tlsTestHost)
	_, otherKey, _ := ca.issue(t, dir, "b-", 3, tlsTestHost)
	cfg, err := parseConfig([]string{"-tls-cert", certPath, "-tls-key", otherKey, "-data-dir", dir}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	_, err = newHTTPSFront(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "tls certificate") || !strings.Contains(err.Error(), certPath) {
		t.Fatalf("mismatched key: error %v, want one naming the certificate file", err)
	}
}

// pebble is a Pebble ACME server on loopback for one test.
type pebble struct {
	directory string        // ACME directory URL
	caFile    string        // PEM of the CA of Pebble's own HTTPS listener
	mgmt      string        // management interface base URL
	http      *http.Client  // trusts Pebble's listener
	log       *bytes.Buffer // what Pebble printed
	logMu     *sync.Mutex
}

// startPebble runs Pebble with a listener certificate from a test CA, validating
// challenges on httpPort (HTTP-01) and tlsPort (TLS-ALPN-01) of the names it is asked
// for, which all resolve to 127.0.0.1 (a DNS stub). Validation is real: no
// PEBBLE_VA_ALWAYS_VALID.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	bin := testenv.RequireTool(t, "pebble", "apt-get install pebble, or go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3 (scripts/test-deps.sh does it)")
	dir := t.TempDir()
	ca := newTestCA(t)
	cert, key, _ := ca.issue(t, dir, "pebble-", 2, "localhost")
	caFile := filepath.Join(dir, "pebble-ca.pem")
	writeFile(t, caFile, ca.pem)
	dns := startDNSStub(t)
	listen, mgmt := freePort(t, "tcp"), freePort(t, "tcp")
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(listen),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmt),
		"certificate":                    cert,
		"privateKey":                     key,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}})
	confFile := filepath.Join(dir, "pebble-config.json")
	writeFile(t, confFile, conf)

	p := &pebble{directory: fmt.Sprintf("https://127.0.0.1:%d/dir", listen), caFile: caFile,
		mgmt: fmt.Sprintf("https://127.0.0.1:%d", mgmt), log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	cmd := exec.Command(bin, "-config", confFile, "-dnsserver", dns)
	// No random sleeps before validation, no random nonce rejections, no reuse of an
	// earlier authorization: a deterministic CA that validates every order.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out := lockedWriter{mu: p.logMu, w: p.log}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.output())
		}
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}
	t.Cleanup(tr.CloseIdleConnections)
	p.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := p.http.Get(p.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not serve its directory within 30 s: %v\n%s", err, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *pebble) output() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// roots returns Pebble's issuing root and intermediates, which it makes anew at every start.
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, path := range []string{"/roots/0", "/intermediates/0"} {
		resp, err := p.http.Get(p.mgmt + path)
		if err != nil {
			t.Fatalf("pebble %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !pool.AppendCertsFromPEM(b) {
			t.Fatalf("pebble %s: %d %q", path, resp.StatusCode, b)
		}
	}
	return pool
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startDNSStub answers every A question with 127.0.0.1 (and AAAA with nothing), so
// that Pebble validates any name against Lectern on loopback. It returns its address.
func startDNSStub(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			if answer, err := dnsAnswer(buf[:n]); err == nil {
				_, _ = conn.WriteTo(answer, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return conn.LocalAddr().String()
}

func dnsAnswer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}
		if err := b.AResource(rh, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// TestACMECertificateFromPebble: with -acme-domain, Lectern gets its certificate from a
// real ACME server (Pebble on loopback), which validates the name by connecting to
// Lectern's own listeners, once over TLS-ALPN-01 on -https and once over HTTP-01 on -http
// (the redirect server), each time with the other port closed; the certificate chains to
// Pebble's root, is cached in <data-dir>/acme and served after a restart without asking
// the CA again.
func TestACMECertificateFromPebble(t *testing.T) {
	t.Run("tls-alpn-01", func(t *testing.T) { testACME(t, "tls-alpn-01") })
	t.Run("http-01", func(t *testing.T) { testACME(t, "http-01") })
}

func testACME(t *testing.T, challenge string) {
	httpPort, httpsPort := freePort(t, "tcp"), freePort(t, "tcp")
	closed := freePort(t, "tcp") // nothing listens there: that challenge fails
	var p *pebble
	if challenge == "http-01" {
		p = startPebble(t, httpPort, closed)
	} else {
		p = startPebble(t, closed, httpsPort)
	}
	dataDir := t.TempDir()
	acmeFlags := []string{"-acme-domain", tlsTestHost, "-acme-email", "ops@example.org", "-acme-directory", p.directory, "-acme-ca", p.caFile}
	ta := startTLSApp(t, dataDir, httpPort, httpsPort, acmeFlags...)

	client := tlsTestClient(t, p.roots(t))
	base := fmt.Sprintf("https://%s:%d", tlsTestHost, httpsPort)
	resp, err := client.Get(base + "/healthz") // the first handshake obtains the certificate
	if err != nil {
		t.Fatalf("GET /healthz with a certificate from Pebble: %v\npebble:\n%s", err, p.output())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != hstsValue {
		t.Fatalf("GET /healthz: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	leaf := resp.TLS.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tlsTestHost {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, tlsTestHost)
	}
	if !strings.Contains(p.output(), "set VALID by completed challenge") {
		t.Errorf("pebble's log does not show a validated challenge:\n%s", p.output())
	}
	// `lectern healthcheck` reaches it too (naming the ACME host, which the manager needs).
	if code, stdout, stderr := healthcheckRun(ta.args...); code != 0 {
		t.Errorf("healthcheck with ACME: exit %d, %q %q", code, stdout, stderr)
	}
	// ACME HTTP-01 answers pass through the redirect server; everything else redirects.
	resp, err = client.Get(fmt.Sprintf("http://%s:%d/.well-known/acme-challenge/unknown-token", tlsTestHost, httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusPermanentRedirect {
		t.Error("an ACME HTTP-01 challenge path was redirected instead of answered")
	}
	// Plain HTTP to the address (not the name) is sent to the name, which has the certificate.
	resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/replays?x=1", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := base + "/replays?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("HTTP to the address: %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// A name that is not configured gets no certificate (and the CA is not asked).
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort)),
		&tls.Config{ServerName: "other.test", InsecureSkipVerify: true}); err == nil {
		t.Error("a handshake for an unconfigured name succeeded")
	}

	// The certificate is cached in the data dir: a restart serves it without the CA.
	entries, _ := os.ReadDir(filepath.Join(dataDir, "acme"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, " "), tlsTestHost) {
		t.Fatalf("<data-dir>/acme holds %v, want the certificate of %s", names, tlsTestHost)
	}
	ta.stop()
	acmeFlags[len(acmeFlags)-3] = "https://127.0.0.1:1/dir" // no CA there any more
	startTLSApp(t, dataDir, httpPort, httpsPort, acmeFlags...)
	if got := servedLeaf(t, httpsPort, tlsTestHost); !got.Equal(leaf) {
		t.Errorf("after a restart the server presents another certificate (serial %v, want %v)", got.SerialNumber, leaf.SerialNumber)
	}
}

// TestHTTPSFilesAndACME: with both, the ACME names go to the ACME manager and every
// other name (or none, as when browsing to the address) gets the files' certificate.
func TestHTTPSFilesAndACME(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certPath, keyPath, fileLeaf := ca.issue(t, dir, "", 2, "lectern.internal")
	httpsPort := freePort(t, "tcp")
	startTLSApp(t, filepath.Join(dir, "data"), freePort(t, "tcp"), httpsPort, "-tls-cert", certPath, "-tls-key", keyPath,
		"-acme-domain", tlsTestHost, "-acme-directory", "https://127.0.0.1:1/dir") // no CA there
	for _, name := range []string{"lectern.internal", ""} {
		if got := servedLeaf(t, httpsPort, name); !got.Equal(fileLeaf) {
			t.Errorf("server name %q: served %v, want the files' certificate", name, got.DNSNames)
		}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort)),
		&tls.Config{ServerName: tlsTestHost, InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatalf("the ACME name got a certificate (%v) although no CA is reachable: not the ACME path", conn.ConnectionState().PeerCertificates[0].DNSNames)
	}
}

// TestHTTPSRedirectConnectionsCapped: the redirect listener counts in -max-conns-per-ip
// like the HTTPS one, so idle connections to port 80 cannot exhaust the descriptors.
func TestHTTPSRedirectConnectionsCapped(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certPath, keyPath, _ := ca.issue(t, dir, "", 2, tlsTestHost)
	ta := startTLSApp(t, filepath.Join(dir, "data"), freePort(t, "tcp"), freePort(t, "tcp"),
		"-tls-cert", certPath, "-tls-key", keyPath, "-max-conns-per-ip", "2")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ta.httpPort))
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The two held connections are accepted; wait until a third is closed on arrival.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third idle connection from one address to the redirect port stayed open (read: %v)", err)
		}
	}
}
