package rtsp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"

	"lectern/sfu"
)

// loopbackAllowed is the allow-list tests use: their cameras listen on loopback,
// which the default policy refuses.
func loopbackAllowed(t testing.TB) *Destinations {
	t.Helper()
	d, err := ParseDestinations([]string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fakePeer listens on loopback and runs serve for each connection (closed after
// it returns) until the test ends. It counts the connections.
type fakePeer struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  map[net.Conn]struct{}
}

func newFakePeer(t *testing.T, serve func(net.Conn)) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{ln: ln, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			p.mu.Lock()
			p.open[nc] = struct{}{}
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer nc.Close()
				serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for nc := range p.open {
			_ = nc.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// cseqOf returns a request's CSeq, for a fake peer's answer.
func cseqOf(req *base.Request) string {
	if v := req.Header["CSeq"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (p *fakePeer) port() string {
	_, port, _ := net.SplitHostPort(p.ln.Addr().String())
	return port
}

func TestDestinations(t *testing.T) {
	parse := func(entries ...string) *Destinations {
		d, err := ParseDestinations(entries)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	var none *Destinations
	for _, tc := range []struct {
		name  string
		d     *Destinations
		host  string
		ip    string
		allow bool
	}{
		{"default: loopback", none, "127.0.0.1", "127.0.0.1", false},
		{"default: loopback 127/8", parse(), "127.1.2.3", "127.1.2.3", false},
		{"default: ipv6 loopback", none, "::1", "::1", false},
		{"default: mapped loopback", none, "::ffff:127.0.0.1", "::ffff:127.0.0.1", false},
		{"default: metadata", none, "169.254.169.254", "169.254.169.254", false},
		{"default: ipv6 link-local", none, "fe80::1", "fe80::1", false},
		{"default: unspecified", none, "0.0.0.0", "0.0.0.0", false},
		{"default: this network", none, "0.1.2.3", "0.1.2.3", false},
		{"default: multicast", none, "224.0.0.1", "224.0.0.1", false},
		{"default: a name resolving to loopback", none, "cam.example", "127.0.0.1", false},
		{"default: private camera", none, "192.168.1.20", "192.168.1.20", true},
		{"default: public camera", none, "cam.example", "203.0.113.7", true},
		{"listed network", parse("10.20.0.0/16"), "10.20.3.4", "10.20.3.4", true},
		{"outside the listed network", parse("10.20.0.0/16"), "10.21.3.4", "10.21.3.4", false},
		{"a name resolving into the listed network", parse("10.20.0.0/16"), "cam.lan", "10.20.3.4", true},
		{"listed loopback", parse("127.0.0.0/8"), "127.0.0.1", "127.0.0.1", true},
		{"listed host", parse("cam1.example"), "CAM1.example.", "203.0.113.7", true},
		{"listed host resolving to loopback", parse("cam1.example"), "cam1.example", "127.0.0.1", false},
		{"wildcard host", parse("*.cams.example"), "a.cams.example", "203.0.113.7", true},
		{"wildcard does not match its parent", parse("*.cams.example"), "cams.example", "203.0.113.7", false},
		{"unlisted host", parse("cam1.example"), "cam2.example", "203.0.113.7", false},
		{"single address", parse("192.0.2.7"), "192.0.2.7", "192.0.2.7", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.d.check(tc.host, netip.MustParseAddr(tc.ip))
			if tc.allow && err != nil || !tc.allow && !errors.Is(err, ErrDestinationRefused) {
				t.Fatalf("check(%s, %s) = %v, want allowed %v", tc.host, tc.ip, err, tc.allow)
			}
		})
	}
	if _, err := ParseDestinations([]string{"10.0.0.0/33", "not a host!", "ok.example", "-bad.example"}); err == nil ||
		!strings.Contains(err.Error(), "10.0.0.0/33") || !strings.Contains(err.Error(), "not a host!") || !strings.Contains(err.Error(), "-bad.example") {
		t.Fatalf("bad entries: %v", err)
	}
}

// TestPullSourceDestinationsRefused: by default a source may not name a loopback,
// link-local (cloud metadata), unspecified or multicast address: Add refuses it
// with ErrDestinationRefused. A host name is checked on the address it resolves to
// when dialled, at every attempt: "localhost" never gets a connection (issue 9, 10e).
func TestPullSourceDestinationsRefused(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
	defer reg.CloseAll()
	cam := newFakePeer(t, func(nc net.Conn) { _, _ = bufio.NewReader(nc).ReadString('\n') })
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(reg, testSession), Logger: testLogger(),
		BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Timeout: time.Second})
	defer sources.Close()
	for i, host := range []string{"127.0.0.1", "[::1]", "169.254.169.254", "[fe80::1]", "0.0.0.0", "224.0.0.1", "[::ffff:127.0.0.1]"} {
		_, err := sources.Add(testSession, SourceSpec{URL: "rtsp://" + host + ":" + cam.port() + "/cam", Name: "cam" + string(rune('a'+i)), As: "site"})
		if !errors.Is(err, ErrDestinationRefused) || !strings.Contains(err.Error(), "allow-list") {
			t.Fatalf("%s: %v, want ErrDestinationRefused", host, err)
		}
	}
	if n := len(sources.List(testSession)); n != 0 {
		t.Fatalf("%d refused sources were kept", n)
	}

	info, err := sources.Add(testSession, SourceSpec{URL: "rtsp://user:pw@localhost:" + cam.port() + "/cam", Name: "by-name", As: "site"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for attempts := 0; attempts < 3; {
		st := sourceState(sources, testSession)
		if st.ID != info.ID {
			t.Fatalf("source %+v", st)
		}
		if st.LastError != "" {
			if !strings.HasPrefix(st.LastError, "destination not allowed") {
				t.Fatalf("last error %q, want destination not allowed", st.LastError)
			}
			attempts++
		}
		if time.Now().After(deadline) {
			t.Fatal("no refusal reported")
		}
		time.Sleep(30 * time.Millisecond)
	}
	if n := cam.conns.Load(); n != 0 {
		t.Fatalf("the server connected to a loopback address %d times", n)
	}

	// A listed host name is no way around it either.
	listed, err := ParseDestinations([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	strict := NewSources(SourcesConfig{Sessions: sessionsOf(reg, testSession), Logger: testLogger(), Allow: listed, Timeout: time.Second})
	defer strict.Close()
	if _, err := strict.Add(testSession, SourceSpec{URL: "rtsp://localhost:" + cam.port() + "/cam", Name: "listed", As: "site"}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	waitFor(ctx, t, "the listed name to be refused at dial time", func() bool {
		return strings.HasPrefix(sourceState(strict, testSession).LastError, "destination not allowed")
	})
	if n := cam.conns.Load(); n != 0 {
		t.Fatalf("the server connected to a loopback address %d times", n)
	}
}

// TestPullSourceLastErrorVocabulary: what a source reports is a fixed phrase, never
// the bytes the peer sent (issue 9, 10e).
func TestPullSourceLastErrorVocabulary(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
	defer reg.CloseAll()
	const banner = "Banner-7f3a9 secret service"
	httpPeer := newFakePeer(t, func(nc net.Conn) {
		_, _ = bufio.NewReader(nc).ReadString('\n')
		_, _ = nc.Write([]byte("HTTP/1.1 400 " + banner + "\r\nServer: " + banner + "\r\n\r\n{\"error\":\"" + banner + "\"}"))
	})
	rtspPeer := newFakePeer(t, func(nc net.Conn) {
		rc := conn.NewConn(nc)
		for {
			req, err := rc.ReadRequest()
			if err != nil {
				return
			}
			_, _ = nc.Write([]byte("RTSP/1.0 401 " + banner + "\r\nCSeq: " + cseqOf(req) + "\r\nWWW-Authenticate: Basic realm=\"" + banner + "\"\r\n\r\n"))
		}
	})
	silent := newFakePeer(t, func(nc net.Conn) { _, _ = io.Copy(io.Discard, nc) })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	sources := NewSources(SourcesConfig{Sessions: sessionsOf(reg, testSession), Allow: loopbackAllowed(t), Logger: testLogger(),
		BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Timeout: 500 * time.Millisecond})
	defer sources.Close()
	for _, tc := range []struct{ name, url, want string }{
		{"closed-port", "rtsp://" + closedAddr + "/cam", "connection refused"},
		{"http-server", "rtsp://127.0.0.1:" + httpPeer.port() + "/cam", "not an RTSP server"},
		{"unauthorized", "rtsp://127.0.0.1:" + rtspPeer.port() + "/cam", "unauthorized (DESCRIBE answered 401): check the user name and password in the source URL"},
		{"wrong-password", "rtsp://u:p@127.0.0.1:" + rtspPeer.port() + "/cam", "unauthorized (DESCRIBE answered 401): check the user name and password in the source URL"},
		{"silent", "rtsp://127.0.0.1:" + silent.port() + "/cam", "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := sources.Add(testSession, SourceSpec{URL: tc.url, Name: tc.name, As: "site"})
			if err != nil {
				t.Fatal(err)
			}
			var last string
			waitFor(t.Context(), t, "a last error", func() bool {
				for _, s := range sources.List(testSession) {
					if s.ID == info.ID {
						last = s.LastError
					}
				}
				return last != ""
			})
			if last != tc.want {
				t.Fatalf("last error %q, want %q", last, tc.want)
			}
			if strings.Contains(last, "Banner") || strings.Contains(last, "HTTP") {
				t.Fatalf("the peer's bytes in the last error: %q", last)
			}
		})
	}
}

// TestPullSourceCredentialsOnlyOnChallenge: a source sends its URL's credentials
// only in answer to a 401 on the connection to the host the URL names, never
// unasked, and follows no redirect to another host (issue 9, 10e).
func TestPullSourceCredentialsOnlyOnChallenge(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
	defer reg.CloseAll()
	elsewhere := newFakePeer(t, func(nc net.Conn) { _, _ = io.Copy(io.Discard, nc) })
	var mu sync.Mutex
	var seen []string // "METHOD auth?" per request
	redirector := newFakePeer(t, func(nc net.Conn) {
		rc := conn.NewConn(nc)
		for {
			req, err := rc.ReadRequest()
			if err != nil {
				return
			}
			var a string
			if v := req.Header["Authorization"]; len(v) > 0 {
				a = v[0]
			}
			mu.Lock()
			seen = append(seen, string(req.Method)+" "+strings.Fields(a + " -")[0])
			mu.Unlock()
			cseq := "CSeq: " + cseqOf(req) + "\r\n"
			switch {
			case a == "":
				_, _ = nc.Write([]byte("RTSP/1.0 401 Unauthorized\r\n" + cseq + "WWW-Authenticate: Basic realm=\"cam\"\r\n\r\n"))
			case req.Method == base.Describe:
				_, _ = nc.Write([]byte("RTSP/1.0 302 Moved\r\n" + cseq + "Location: rtsp://127.0.0.1:" + elsewhere.port() + "/cam\r\n\r\n"))
			default:
				_, _ = nc.Write([]byte("RTSP/1.0 200 OK\r\n" + cseq + "\r\n"))
			}
		}
	})
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(reg, testSession), Allow: loopbackAllowed(t), Logger: testLogger(),
		BackoffMin: time.Hour, Timeout: 2 * time.Second})
	defer sources.Close()
	if _, err := sources.Add(testSession, SourceSpec{URL: "rtsp://admin:pw@127.0.0.1:" + redirector.port() + "/cam", Name: "cam", As: "site"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t.Context(), t, "a last error", func() bool { return sourceState(sources, testSession).LastError != "" })
	if got := sourceState(sources, testSession).LastError; got != "camera refused DESCRIBE (status 302)" {
		t.Fatalf("last error %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[0] != "OPTIONS -" {
		t.Fatalf("requests %v: the first one must carry no credentials", seen)
	}
	if n := elsewhere.conns.Load(); n != 0 {
		t.Fatalf("the redirect was followed (%d connections)", n)
	}
}
