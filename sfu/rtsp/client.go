package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// A pull source plays its camera with gortsplib.Client: OPTIONS, DESCRIBE, SETUP over
// UDP with the fallback to TCP (interleaved) when the camera refuses UDP or nothing
// arrives, PLAY, keep-alives as the camera's session timeout requires, and RTCP
// receiver reports over UDP. What stays ours is where it may connect and what it
// tells the camera and the API:
//
//   - the only address dialled is the one the source URL names, checked against the
//     allow-list after name resolution, at every dial (the library dials again
//     when it falls back to TCP);
//   - redirects are not followed: the camera's Location header is dropped before
//     the library sees it, so a 3xx answer is an error (credentials go only to the
//     host the URL names, and only in answer to its 401);
//   - UDP media go only to the camera's own address: a Transport "source=" naming
//     another one is dropped (it would make the server send RTCP wherever a peer
//     says);
//   - a peer that does not answer "RTSP/" is cut at once (an HTTP server, say);
//   - errors name the request and the status, never the peer's text nor the URL.

// statusError is a camera's answer with an error status to method. The reason
// phrase, the peer's text, is not kept: errors reach the API as a source's last
// error (see sourceErrorText).
type statusError struct {
	method string
	status int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("camera refused %s: status %d", e.method, e.status)
}

// errNotRTSP: the peer's first bytes are not an RTSP response.
var errNotRTSP = errors.New("the peer does not speak RTSP")

// errOtherHost: the client was about to dial another address than the source URL's,
// which only a redirect would make it do.
var errOtherHost = fmt.Errorf("%w: only the host the source URL names is dialled (redirects are not followed)", ErrDestinationRefused)

// requestError gives err, returned by the client's method call, the request's name
// when the camera answered with an error status.
func requestError(method string, err error) error {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return &statusError{method: method, status: int(bad.Code)}
	}
	return fmt.Errorf("%s: %w", method, err)
}

// cameraLink is what one connection attempt of a source knows about its camera,
// for the client's hooks.
type cameraLink struct {
	ctx   context.Context // the source's: once done, writes get a short deadline
	addr  string          // host:port the source URL names: the only one dialled
	host  string          // the URL host, as the allow-list sees it
	allow *Destinations
	sniff bool                       // check that the peer answers "RTSP/" (not under TLS: it sees ciphertext)
	peer  atomic.Pointer[netip.Addr] // the address dialled last
	log   *slog.Logger

	lost, decodeErrors atomic.Uint64
}

// newCameraClient returns a client (not started) for one connection attempt to the
// camera at u. transport nil lets the client try UDP first, then TCP.
func newCameraClient(ctx context.Context, u *url.URL, cfg SourcesConfig, transport *gortsplib.Transport, log *slog.Logger) (*gortsplib.Client, *cameraLink) {
	port := u.Port()
	if port == "" {
		port = "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
	}
	link := &cameraLink{ctx: ctx, addr: net.JoinHostPort(u.Hostname(), port), host: u.Hostname(),
		allow: cfg.Allow, sniff: u.Scheme == "rtsp", log: log}
	var tlsConf *tls.Config
	if u.Scheme == "rtsps" {
		// A copy per client: the library writes ServerName into it.
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSConfig != nil {
			tlsConf = cfg.TLSConfig.Clone()
		}
	}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		TLSConfig:    tlsConf,
		Transport:    transport,
		UserAgent:    "Lectern",
		DialContext:  link.dial,
		OnResponse:   link.sanitize,
		OnTransportSwitch: func(err error) {
			log.Info("rtsp source: switching to RTP over TCP", "reason", err)
		},
		// Per-packet events are counted, not logged: connect logs the totals.
		OnPacketsLost: func(n uint64) { link.lost.Add(n) },
		OnDecodeError: func(error) { link.decodeErrors.Add(1) },
	}
	return c, link
}

// dial connects to the camera, if address is the URL's and the allow-list admits
// the address it resolves to.
func (l *cameraLink) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if address != l.addr {
		return nil, errOtherHost
	}
	d := net.Dialer{Control: l.allow.control(l.host)}
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip := ta.AddrPort().Addr().Unmap()
		l.peer.Store(&ip)
	}
	return &cameraConn{Conn: nc, link: l, sniffing: l.sniff}, nil
}

// sanitize runs on every response before the client reads it.
func (l *cameraLink) sanitize(res *base.Response) {
	if _, ok := res.Header["Location"]; ok {
		// Without Location the client does not follow the redirect: the answer
		// stays an error status.
		delete(res.Header, "Location")
		l.log.Info("rtsp source: the camera redirects; not followed", "status", int(res.StatusCode))
	}
	v, ok := res.Header["Transport"]
	if !ok {
		return
	}
	var th headers.Transport
	if th.Unmarshal(v) != nil || th.Source == nil {
		return
	}
	peer := l.peer.Load()
	src, ok := netip.AddrFromSlice(*th.Source)
	if ok && peer != nil && src.Unmap() == *peer {
		return
	}
	// Without source= the client sends its UDP packets to the camera's address
	// and accepts only packets from there (it falls back to TCP if none come).
	th.Source = nil
	res.Header["Transport"] = th.Marshal()
	l.log.Info("rtsp source: the camera names another address for its media; ignored", "source", src)
}

// cameraConn is the camera's TCP connection as the client sees it.
type cameraConn struct {
	net.Conn
	link     *cameraLink
	sniffing bool // until "RTSP/" has been read
	seen     int  // bytes of "RTSP/" matched
	failed   bool
}

const rtspPrefix = "RTSP/"

// Read cuts a peer whose first answer does not begin with "RTSP/": the library would
// skip its bytes looking for one until the peer closes.
func (c *cameraConn) Read(b []byte) (int, error) {
	if c.failed {
		return 0, errNotRTSP
	}
	n, err := c.Conn.Read(b)
	if !c.sniffing {
		return n, err
	}
	for _, ch := range b[:n] {
		if c.seen == 0 && (ch == '\r' || ch == '\n') {
			continue
		}
		if ch != rtspPrefix[c.seen] {
			c.failed = true
			return 0, errNotRTSP
		}
		if c.seen++; c.seen == len(rtspPrefix) {
			c.sniffing = false
			break
		}
	}
	return n, err
}

// SetWriteDeadline shortens the deadline once the source is stopping: the goodbye
// (TEARDOWN) to a camera that does not read must not hold up shutdown.
func (c *cameraConn) SetWriteDeadline(t time.Time) error {
	if c.link.ctx.Err() != nil {
		t = time.Now().Add(time.Second)
	}
	return c.Conn.SetWriteDeadline(t)
}
