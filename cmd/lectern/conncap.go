package main

import (
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lectern/internal/limit"
)

// connLogEvery is the least time between two log lines about refused
// connections: a client opening thousands must not flood the log.
const connLogEvery = 10 * time.Second

// connCap bounds the HTTP connections one client address holds at once. One
// host opening hundreds of idle connections used to exhaust the server's file
// descriptors, so that nobody else could even reach /healthz. Connections
// beyond the cap are closed as soon as they are accepted, before any byte (or
// TLS handshake) is read, counted in lectern_http_connections_refused_total,
// and logged at most once per connLogEvery.
type connCap struct {
	per      *limit.Counter
	refused  prometheus.Counter
	log      *slog.Logger
	lastLog  atomic.Int64 // unix nanoseconds of the last log line
	unlogged atomic.Int64 // refusals since then
}

func newConnCap(max int, log *slog.Logger) *connCap {
	return &connCap{
		per: limit.NewCounter(max),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lectern_http_connections_refused_total",
			Help: "HTTP connections closed on arrival because their client address held -max-conns-per-ip already.",
		}),
		log: log,
	}
}

// listenTCP opens a TCP listener for the HTTP layer (plain, or below TLS): its
// connections are capped per client address when -max-conns-per-ip is set.
func (a *app) listenTCP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || a.conns == nil || a.conns.per.Max() == 0 {
		return ln, err
	}
	return &cappedListener{Listener: ln, cap: a.conns}, nil
}

// cappedListener is a net.Listener whose Accept closes the connections of an
// address over its cap and hands out the others, each holding its place until
// it is closed.
type cappedListener struct {
	net.Listener
	cap *connCap
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := limit.Host(c.RemoteAddr().String())
		if release, ok := l.cap.per.Acquire(host); ok {
			return &cappedConn{Conn: c, release: release}, nil
		}
		_ = c.Close()
		l.cap.refuse(host)
	}
}

func (c *connCap) refuse(host string) {
	c.refused.Inc()
	c.unlogged.Add(1)
	now, last := time.Now().UnixNano(), c.lastLog.Load()
	if now-last < int64(connLogEvery) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn("HTTP connections refused: too many from one address (-max-conns-per-ip)",
		"addr", host, "limit", c.per.Max(), "refused", c.unlogged.Swap(0))
}

// cappedConn gives its place back when closed (the server closes every
// connection it accepted, whatever ends it). It keeps the methods net/http
// looks for on a *net.TCPConn: ReadFrom (sendfile for files and replays) and
// CloseWrite (a clean close after an error answer).
type cappedConn struct {
	net.Conn
	release func() // idempotent
}

func (c *cappedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

func (c *cappedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *cappedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
