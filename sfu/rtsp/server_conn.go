package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"lectern/auth"
	"lectern/sfu"
)

// lecternListener hands gortsplib connections wrapped in lecternConn (TLS done
// here, so the wrapper sees plain RTSP). Accept never returns a temporary error:
// gortsplib stops the whole server on any.
type lecternListener struct {
	net.Listener
	s *Server
}

func (l *lecternListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err == nil {
			var inner net.Conn = nc
			if l.s.tls != nil {
				inner = tls.Server(nc, l.s.tls)
			}
			return newConnState(l.s, inner).nc, nil
		}
		if l.s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		l.s.log.Warn("rtsp accept", "err", err)
		select { // e.g. too many open files: do not spin
		case <-time.After(100 * time.Millisecond):
		case <-l.s.ctx.Done():
			return nil, err
		}
	}
}

// Read deadline modes of a connection (see lecternConn.Read).
const (
	modeRequests int32 = iota // waiting for requests: ReadTimeout
	modePlayTCP               // playing over TCP: may say nothing for long; writes detect a dead peer
	modeUDP                   // playing or publishing over UDP: keep-alives within SessionTimeout
)

// lecternConn is the net.Conn gortsplib reads and writes. It puts Lectern's read
// deadlines on the connection (gortsplib sets none while a client is not streaming,
// so a silent or stalled client would hold a connection forever), and defers the
// real close to OnConnClose, which may first answer bad input with a 400.
type lecternConn struct {
	net.Conn
	st       *connState
	opened   atomic.Bool // OnConnOpen ran: OnConnClose will close
	closing  atomic.Bool
	mode     atomic.Int32
	closeOne sync.Once

	// Writes to a TCP reader gather in pending; the server's shared writers
	// (connWriters) send what gathered with one system call: gortsplib writes
	// each packet on its own, and the system call, not the copy, is most of a
	// reader's cost. At most maxPending bytes wait; past that Write blocks, so
	// gortsplib's queue for the reader fills and a slow reader is detected there.
	wmu      sync.Mutex
	wcond    sync.Cond // on wmu: pending drained, or an error
	pending  []byte
	spare    []byte
	werr     error // a write failed, or the connection closed
	queued   bool  // on its worker's list (or being sent by it)
	blocking bool  // sendBlocking runs: the reader stalled, or the connection is TLS
	writer   *connWriter
	played   bool // a write after PLAY (its response) was queued: direct frames may follow

	// raw sends without blocking, for the worker (nil for TLS, whose records a
	// non-blocking write cannot cut: sendBlocking sends those). rawBuf, rawN and
	// rawErr are rawWrite's arguments and results (worker only; a method value
	// made once, so a send allocates nothing).
	raw        syscall.RawConn
	deadline   atomic.Bool // a write deadline may be on the socket: the worker clears it
	rawWriteFn func(fd uintptr) bool
	rawBuf     []byte
	rawN       int
	rawErr     error
}

const maxPending = 64 << 10

func (c *lecternConn) Read(b []byte) (int, error) {
	if c.closing.Load() {
		return 0, net.ErrClosed
	}
	switch c.mode.Load() {
	case modeRequests:
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.st.s.cfg.ReadTimeout))
	case modeUDP:
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.st.s.cfg.SessionTimeout))
	default:
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
	return c.Conn.Read(b)
}

func (c *lecternConn) Write(b []byte) (int, error) {
	if c.closing.Load() {
		return 0, net.ErrClosed
	}
	if c.mode.Load() != modePlayTCP { // responses, publishers' and UDP readers' connections
		return c.Conn.Write(b)
	}
	c.wmu.Lock()
	for len(c.pending) >= maxPending && c.werr == nil {
		c.wcond.Wait()
	}
	if err := c.werr; err != nil {
		c.wmu.Unlock()
		return 0, err
	}
	c.pending = append(c.pending, b...)
	c.played = true
	notify := false
	switch {
	case c.queued || c.blocking: // whoever sends will see these bytes
	case c.raw == nil || c.writer == nil:
		c.blocking = true
		go c.sendBlocking(nil, 0)
	default:
		c.queued, notify = true, true
	}
	c.wmu.Unlock()
	if notify {
		c.writer.Notify(c)
	}
	return len(b), nil
}

// sendSome is the worker's turn on c: it sends the pending bytes without
// blocking and reports whether c has more to send. A partial send means the
// reader's socket buffer is full: the rest goes to sendBlocking, which waits.
func (c *lecternConn) sendSome() bool {
	c.wmu.Lock()
	if c.werr != nil || len(c.pending) == 0 {
		c.queued = false
		c.wmu.Unlock()
		return false
	}
	buf := c.pending
	c.pending = c.spare[:0]
	c.spare = nil
	c.wcond.Broadcast() // a writer waiting for room
	c.wmu.Unlock()

	// A deadline left on the socket (from a response written before PLAY, or by
	// sendBlocking) would fail this write once it passed, however ready the socket.
	if c.deadline.Swap(false) {
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	c.rawBuf, c.rawN, c.rawErr = buf, 0, nil
	err := c.raw.Write(c.rawWriteFn)
	n := c.rawN
	if err == nil {
		err = c.rawErr
	}
	c.rawBuf = nil

	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err != nil {
		if c.werr == nil {
			c.werr = err
		}
		c.wcond.Broadcast()
		c.queued = false
		return false
	}
	if n < len(buf) {
		c.queued, c.blocking = false, true
		go c.sendBlocking(buf, n)
		return false
	}
	c.keep(buf)
	if len(c.pending) == 0 {
		c.queued = false
		return false
	}
	return true
}

// rawWrite writes c.rawBuf[c.rawN:] to the socket until it would block; it is
// the callback of RawConn.Write, returning true so the poller never waits.
//
// The write is a raw system call: the socket does not block, yet a write to a
// local reader takes tens of microseconds (the kernel delivers it and wakes the
// reader within it), long enough that, through syscall.Write, the runtime's
// monitor would often hand the worker's P to another thread meanwhile: a thread
// wake-up and context switch per write, and a monitor polling every 20 µs.
func (c *lecternConn) rawWrite(fd uintptr) bool {
	for c.rawN < len(c.rawBuf) {
		b := c.rawBuf[c.rawN:]
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		n := int(r)
		if errno == 0 && n > 0 {
			c.rawN += n
		}
		switch {
		case errno == syscall.EINTR:
		case errno == syscall.EAGAIN:
			return true
		case errno != 0:
			c.rawErr = fmt.Errorf("rtsp: write: %w", errno)
			return true
		case n <= 0:
			return true
		}
	}
	return true
}

// sendBlocking sends held[sent:] (what a worker could not send of a buffer it
// took; nil: none) and then the pending bytes with blocking writes, each batch
// within WriteTimeout, until nothing is pending: then the connection goes back to
// its worker. It runs for a TLS connection's every batch, and for a plain one's
// only while its reader lags. Each buffer, once sent, is kept whole for the next
// batches (keep): a slice past what was sent would lose that much capacity each
// time, and the pending buffer be reallocated soon after.
func (c *lecternConn) sendBlocking(held []byte, sent int) {
	buf, off := held, sent
	c.wmu.Lock()
	for c.werr == nil && (len(buf) > off || len(c.pending) > 0) {
		if len(buf) <= off {
			c.keep(buf)
			buf, off = c.pending, 0
			c.pending = c.spare[:0]
			c.spare = nil
			c.wcond.Broadcast()
		}
		c.wmu.Unlock()
		c.deadline.Store(true)
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.st.s.cfg.WriteTimeout))
		_, err := c.Conn.Write(buf[off:])
		c.wmu.Lock()
		off = len(buf)
		if err != nil && c.werr == nil {
			c.werr = err
		}
		c.wcond.Broadcast()
	}
	c.keep(buf)
	c.blocking = false
	c.wmu.Unlock()
}

// maxKeptBuffer is the capacity past which a pending buffer is kept for reuse
// only while the batches sent from it fill a quarter of it: a backlog may grow to
// maxDirectPending (a fast start's GOP, a reader that lags), and two buffers that
// large kept for the life of every connection would cost megabytes each, while a
// reader that keeps up needs tens of kilobytes. While the backlog lasts, they are
// kept (reallocating them for every batch would cost more than the old slicing).
const maxKeptBuffer = 256 << 10

// keep makes buf, just sent, the spare buffer that pending takes next, unless
// there is one already or buf is large and was mostly empty (the backlog it grew
// for has passed). Under wmu.
func (c *lecternConn) keep(buf []byte) {
	if c.spare == nil && buf != nil && (cap(buf) <= maxKeptBuffer || len(buf) >= cap(buf)/4) {
		c.spare = buf[:0]
	}
}

// SetWriteDeadline passes gortsplib's deadline on, except for a TCP reader: its
// writes do not wait (a worker's), or set one per batch (sendBlocking) rather
// than per packet (each one re-arms a timer).
func (c *lecternConn) SetWriteDeadline(t time.Time) error {
	if c.mode.Load() == modePlayTCP {
		return nil
	}
	c.deadline.Store(true)
	return c.Conn.SetWriteDeadline(t)
}

// SetReadDeadline is Lectern's (see Read); gortsplib's are ignored.
func (c *lecternConn) SetReadDeadline(time.Time) error { return nil }

// Close stops reads and writes at once; the socket is closed by OnConnClose.
func (c *lecternConn) Close() error {
	if !c.opened.Load() {
		return c.closeNow()
	}
	c.closing.Store(true)
	c.wmu.Lock()
	if c.werr == nil {
		c.werr = net.ErrClosed
	}
	c.wcond.Broadcast() // a writer waiting for room
	c.wmu.Unlock()
	return c.Conn.SetReadDeadline(time.Unix(1, 0))
}

func (c *lecternConn) closeNow() error {
	var err error
	c.closeOne.Do(func() {
		c.wmu.Lock()
		c.werr = net.ErrClosed
		c.wcond.Broadcast()
		c.wmu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// connState is what Lectern keeps about one RTSP connection.
type connState struct {
	s      *Server
	nc     *lecternConn
	log    *slog.Logger
	remote string // client IP, the key of the failed-authentication limiter

	// Touched by the connection's request goroutine only (gortsplib handles one
	// request at a time per connection).
	authed     map[string]bool // "session|read" / "session|publish" proven on this connection
	badInput   error           // the request was refused as malformed
	override   *base.Response  // Lectern's answer, replacing gortsplib's
	method     base.Method     // of the request being handled
	noSession  bool            // it carried no Session header
	announce   *announced      // what the last ANNOUNCE checked
	setupMedia int             // TCP reader's SETUP being answered: its media index
	// announceQuery is the query of the accepted ANNOUNCE's URL.
	announceQuery string
}

func newConnState(s *Server, inner net.Conn) *connState {
	host, _, _ := net.SplitHostPort(inner.RemoteAddr().String())
	st := &connState{s: s, remote: host, authed: map[string]bool{},
		log: s.log.With("remote", inner.RemoteAddr().String())}
	st.nc = &lecternConn{Conn: inner, st: st}
	st.nc.wcond.L = &st.nc.wmu
	if sc, ok := inner.(syscall.Conn); ok && s.writers != nil {
		if raw, err := sc.SyscallConn(); err == nil {
			st.nc.raw, st.nc.writer = raw, s.writers.assign()
			st.nc.rawWriteFn = st.nc.rawWrite
		}
	}
	return st
}

// handler is the gortsplib ServerHandler: Lectern's side of every request.
type handler struct{ s *Server }

func (h *handler) state(sc *gortsplib.ServerConn) *connState {
	if c, ok := sc.NetConn().(*lecternConn); ok {
		return c.st
	}
	return nil
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	st := h.state(ctx.Conn)
	if st == nil {
		return
	}
	st.nc.opened.Store(true)
	h.s.mu.Lock()
	h.s.conns[ctx.Conn] = st
	h.s.mu.Unlock()
	st.log.Debug("rtsp connection opened")
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose: bad input is answered
// (when gortsplib's parser refused it) and logged without credentials; then the
// socket is closed.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	st := h.state(ctx.Conn)
	if st == nil {
		return
	}
	h.s.mu.Lock()
	delete(h.s.conns, ctx.Conn)
	h.s.mu.Unlock()
	switch {
	case st.badInput != nil: // answered 400 by gortsplib already
		st.log.Info("rtsp: closing connection after bad input", "err", redactLine(st.badInput.Error()))
	case h.s.ctx.Err() == nil && isParseError(ctx.Error):
		st.log.Info("rtsp: closing connection after bad input", "err", redactLine(ctx.Error.Error()))
		if _, isTLS := st.nc.Conn.(*tls.Conn); !isTLS {
			msg := "Bad Request: malformed RTSP message: " + truncate(redactLine(ctx.Error.Error()), 200)
			msg = strings.Map(func(r rune) rune {
				if isCtl(r) {
					return ' '
				}
				return r
			}, msg)
			_ = st.nc.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = st.nc.Conn.Write([]byte("RTSP/1.0 400 " + msg + "\r\nServer: Lectern\r\n\r\n"))
		}
	default:
		logEnd(st.log, ctx.Error)
	}
	_ = st.nc.closeNow()
}

// isParseError reports whether err is gortsplib's parser refusing the input (or
// the client stalling mid-request, which its parser reports alike), not I/O ending
// or one of its protocol errors (which it answered itself).
func isParseError(err error) bool {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return false
	}
	return !strings.HasSuffix(reflect.TypeOf(err).PkgPath(), "/liberrors") && err.Error() != "terminated"
}

func logEnd(log *slog.Logger, err error) {
	var ne net.Error
	var term liberrors.ErrServerTerminated
	switch {
	case err == nil, errors.As(err, &term), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		log.Debug("rtsp connection closed")
	case errors.As(err, &ne) && ne.Timeout():
		log.Info("rtsp connection timed out", "err", err)
	default:
		log.Info("rtsp connection ended", "err", redactLine(err.Error()))
	}
}

// OnRequest implements gortsplib.ServerHandlerOnRequest. It refuses what could
// reach the response's header (a CSeq that is not a number, control characters) and
// what is not RTSP (header names with spaces): without a CSeq, gortsplib answers 400
// and closes the connection. It also checks an ANNOUNCE whole, so its refusals say
// why whatever gortsplib thinks of the SDP.
func (h *handler) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	st := h.state(sc)
	if st == nil {
		return
	}
	st.override, st.method = nil, req.Method
	_, hasSession := req.Header["Session"]
	st.noSession = !hasSession
	if err := validateRequest(req); err != nil {
		st.badInput = err
		delete(req.Header, "CSeq")
		return
	}
	switch req.Method {
	case base.Announce:
		st.announce = nil
		a, err := h.checkAnnounce(sc, st, req)
		if err != nil {
			st.override = errorResponse(err)
			return
		}
		st.announce = a
	case base.Setup:
		// A publisher's SETUP names its media by the ANNOUNCE URL plus the control;
		// gortsplib compares whole URLs, so a SETUP URL without the ANNOUNCE's query
		// (the token, which some encoders give only once) gets it back.
		if st.announceQuery != "" && req.URL != nil && req.URL.RawQuery == "" {
			req.URL.RawQuery = st.announceQuery
		}
	case base.Teardown:
		// A publisher's publication ends now, before the response (gortsplib closes
		// the session after it).
		if ps, ok := sessionData(sc.Session()).(*pubSession); ok && ps.lease != nil {
			ps.teardown.Store(true)
			ps.lease.End()
		}
	}
}

// validateRequest checks what gortsplib's parser lets through.
func validateRequest(req *base.Request) error {
	for k, vs := range req.Header {
		if k == "" || strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return fmt.Errorf("%w: bad header name %q", errMalformed, truncate(redactLine(k), 40))
		}
		for _, v := range vs {
			if strings.IndexFunc(v, isCtl) >= 0 {
				return fmt.Errorf("%w: control character in header %s", errMalformed, k)
			}
		}
	}
	if cseq, ok := req.Header["CSeq"]; ok && (len(cseq) != 1 || !validCSeq(cseq[0])) {
		return fmt.Errorf("%w: CSeq must be a number", errMalformed)
	}
	if req.URL != nil && strings.IndexFunc(req.URL.String(), isCtl) >= 0 {
		return fmt.Errorf("%w: control character in the URL", errMalformed)
	}
	return nil
}

// OnResponse implements gortsplib.ServerHandlerOnResponse: Lectern's answer replaces
// gortsplib's where Lectern has one.
func (h *handler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	st := h.state(sc)
	if st == nil {
		return
	}
	switch {
	case st.badInput != nil:
		res.StatusCode = base.StatusBadRequest
		res.StatusMessage = "Bad Request: " + truncate(redactLine(st.badInput.Error()), 200)
	case st.override != nil:
		o := st.override
		res.StatusCode, res.StatusMessage, res.Body = o.StatusCode, o.StatusMessage, o.Body
		for k, v := range o.Header {
			res.Header[k] = v
		}
	case res.StatusCode == base.StatusNotImplemented && st.noSession && (st.method == base.Play || st.method == base.Record):
		res.StatusCode = base.StatusMethodNotValidInThisState
		res.StatusMessage = "Method Not Valid in This State: " + string(st.method) + " before SETUP"
	}
	if rs, ok := sessionData(sc.Session()).(*readSession); ok && res.StatusCode == base.StatusOK {
		switch {
		case st.method == base.Setup:
			rs.learnSetup(st.setupMedia, res, st.nc.Conn.RemoteAddr())
		case st.method == base.Play:
			rs.fillRTPInfo(res)
		}
	}
	st.override = nil
	res.Header["Server"] = base.HeaderValue{"Lectern"}
}

// validCSeq reports whether v is a CSeq the server may echo: 1 to 10 digits (RFC
// 2326 §12.17). Anything else could carry header fields into the response.
func validCSeq(v string) bool {
	if v == "" || len(v) > 10 {
		return false
	}
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// target is what a request URL names.
type target struct {
	session     string
	publication string // "" for the session's default (the trainer)
	query       url.Values
}

// parseTarget reads the path ("/{session}[/{publication}]") and raw query gortsplib
// extracted from a request URL.
func parseTarget(path, rawQuery string) (target, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return target{}, fmt.Errorf("%w: bad query", errBadRequest)
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) > 2 || !auth.ValidName(segs[0]) || len(segs) == 2 && !auth.ValidName(segs[1]) {
		return target{}, fmt.Errorf("%w: path %q is not /{session} or /{session}/{publication}", errNotFound, truncate(path, 80))
	}
	t := target{session: segs[0], query: q}
	if len(segs) == 2 {
		t.publication = segs[1]
	}
	return t, nil
}

// check authenticates req for op ("read" or "publish") on t.session. A connection
// that proved a token once for that session and operation need not repeat it (some
// clients mangle the query of later URLs).
func (st *connState) check(req *base.Request, t target, op string, roles ...auth.Role) error {
	key := t.session + "|" + op
	tok := presentedToken(req.Header, t.query)
	if tok == "" && st.authed[key] {
		return nil
	}
	if err := st.s.authorize(st.remote, tok, t.session, roles...); err != nil {
		level := slog.LevelInfo
		if errors.Is(err, auth.ErrMissingToken) {
			level = slog.LevelDebug // clients ask without credentials first, then answer the 401
		}
		st.log.Log(context.Background(), level, "rtsp authentication refused", "session", t.session, "op", op, "err", err)
		return err
	}
	st.authed[key] = true
	return nil
}

// resolve returns the hub session of t.
func (s *Server) resolve(t target) (*sfu.Session, error) {
	sess, err := s.cfg.Sessions(t.session)
	if err != nil {
		return nil, fmt.Errorf("session %q: %w", t.session, err)
	}
	if sess == nil {
		return nil, fmt.Errorf("session %q: %w", t.session, ErrSessionNotFound)
	}
	return sess, nil
}

// Internal errors mapped to RTSP status codes by statusOf.
var (
	errBadRequest     = errors.New("bad request")
	errNotFound       = errors.New("not found")
	errState          = errors.New("method not valid in this state")
	errNotImplemented = errors.New("not implemented")
)

// statusOf maps an error to its RTSP status code; the one place that does.
func statusOf(err error) base.StatusCode {
	switch {
	case errors.Is(err, auth.ErrMissingToken), errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrExpiredToken):
		return base.StatusUnauthorized
	case errors.Is(err, auth.ErrWrongSession), errors.Is(err, auth.ErrWrongRole):
		return base.StatusForbidden
	case errors.Is(err, ErrSessionNotFound), errors.Is(err, sfu.ErrSessionClosed), errors.Is(err, errNotFound):
		return base.StatusNotFound
	case errors.Is(err, ErrBadSDP), errors.Is(err, errMalformed), errors.Is(err, errBadRequest):
		return base.StatusBadRequest
	case errors.Is(err, ErrUnsupportedCodec):
		return base.StatusUnsupportedMediaType
	case errors.Is(err, errState):
		return base.StatusMethodNotValidInThisState
	case errors.Is(err, errNotImplemented):
		return base.StatusNotImplemented
	case errors.Is(err, sfu.ErrTooManySubscribers), errors.Is(err, ErrClosed), errors.Is(err, auth.ErrTooManyFailures),
		errors.Is(err, ErrUnavailable):
		return base.StatusServiceUnavailable
	}
	return base.StatusInternalServerError
}

// errorResponse answers with err's status; the reason phrase and a text body say
// what was wrong (clients such as ffmpeg print the reason phrase; gortsplib's
// client reads at most 255 bytes of it).
func errorResponse(err error) *base.Response {
	code := statusOf(err)
	msg := strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())
	reason := base.StatusMessages[code]
	if reason == "" {
		reason = "Error"
	}
	res := &base.Response{StatusCode: code, StatusMessage: reason + ": " + truncate(msg, 200), Body: []byte(msg + "\n"),
		Header: base.Header{"Content-Type": base.HeaderValue{"text/plain; charset=utf-8"}}}
	if code == base.StatusUnauthorized {
		res.Header["WWW-Authenticate"] = base.HeaderValue{`Basic realm="` + realm + `"`}
	}
	var tooMany *auth.TooManyFailuresError
	if errors.As(err, &tooMany) {
		res.Header["Retry-After"] = base.HeaderValue{strconv.Itoa(int(max(tooMany.RetryAfter(), time.Second) / time.Second))}
	}
	if errors.Is(err, ErrUnavailable) {
		res.Header["Retry-After"] = base.HeaderValue{"5"}
	}
	return res
}

// sessionData returns the Lectern state of a gortsplib session (nil for none).
func sessionData(ss *gortsplib.ServerSession) any {
	if ss == nil {
		return nil
	}
	return ss.UserData()
}
