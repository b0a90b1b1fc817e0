package rtsp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"lectern/auth"
	"lectern/sfu"
)

// serverConn is one RTSP connection. Its run goroutine reads requests and
// interleaved frames and answers them in order; reader streams write interleaved
// frames to it from their own goroutines, under wmu.
type serverConn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	log    *slog.Logger
	remote netip.AddrPort

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	wmu sync.Mutex // serialises writes to nc

	// Owned by the run goroutine.
	authed   map[string]bool // "session|read" / "session|publish" proven on this connection
	sess     *connSession
	offer    *describedOffer // what the last DESCRIBE offered
	frameBuf []byte
	deadline time.Duration // the read deadline in force; -1 for none
}

func newServerConn(s *Server, nc net.Conn) *serverConn {
	ctx, cancel := context.WithCancel(s.ctx)
	remote, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	return &serverConn{
		s: s, nc: nc, br: bufio.NewReaderSize(nc, maxLineLen), ctx: ctx, cancel: cancel,
		remote: netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()),
		log:    s.log.With("remote", nc.RemoteAddr().String()),
		authed: map[string]bool{},
	}
}

// close ends the connection from any goroutine; run notices and cleans up.
func (c *serverConn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		_ = c.nc.Close()
	})
}

// reply is a handler's answer: the response, and what to do once it is written.
type reply struct {
	res   *response
	after func() // e.g. start streaming, after the PLAY response
	close bool   // close the connection after writing
}

func (c *serverConn) run() {
	defer c.cleanup()
	c.log.Debug("rtsp connection opened")
	for {
		c.setReadDeadline()
		b, err := c.br.Peek(1)
		if err != nil {
			c.logEnd(err)
			return
		}
		if b[0] == interleavedID {
			ch, payload, err := readInterleaved(c.br, c.frameBuf)
			if err != nil {
				c.logEnd(err)
				return
			}
			c.frameBuf = payload
			c.handleFrame(ch, payload)
			continue
		}
		req, err := readRequest(c.br)
		if err != nil {
			if errors.Is(err, errMalformed) {
				c.log.Info("rtsp: closing connection after bad input", "err", err)
				_ = c.writeResponse(errorReply(nil, err).res)
			} else {
				c.logEnd(err)
			}
			return
		}
		rp := c.handle(req)
		head := [][2]string{{"Server", "Lectern"}}
		if cseq := req.header.get("CSeq"); validCSeq(cseq) { // echoed only when it is a number
			head = [][2]string{{"CSeq", cseq}, {"Server", "Lectern"}}
		}
		rp.res.fields = append(head, rp.res.fields...)
		if err := c.writeResponse(rp.res); err != nil {
			c.logEnd(err)
			return
		}
		if rp.after != nil {
			rp.after()
		}
		if rp.close {
			return
		}
	}
}

func (c *serverConn) logEnd(err error) {
	switch {
	case c.ctx.Err() != nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("rtsp connection closed")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.log.Info("rtsp connection timed out", "err", err)
			return
		}
		c.log.Info("rtsp connection ended", "err", err)
	}
}

// setReadDeadline bounds the wait for the client's next request or frame: always
// (so a stalled or silent client is closed), except for a TCP reader that is
// playing, which may legitimately send nothing for long (its writes detect a dead
// peer), and a UDP publisher, whose liveness is its media (see watchUDP).
func (c *serverConn) setReadDeadline() {
	d := c.s.cfg.ReadTimeout
	if ss := c.sess; ss != nil {
		switch {
		case ss.playing && !ss.anyUDP:
			d = -1
		case ss.playing, ss.recording && ss.anyUDP:
			d = c.s.cfg.SessionTimeout
		}
	}
	if d < 0 {
		if c.deadline >= 0 {
			_ = c.nc.SetReadDeadline(time.Time{})
			c.deadline = -1
		}
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	c.deadline = d
}

func (c *serverConn) writeResponse(res *response) error {
	return c.write(res.marshal())
}

// write sends b whole, or closes the connection.
func (c *serverConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.close()
		return err
	}
	return nil
}

// handle answers one request. One function per method.
func (c *serverConn) handle(req *request) reply {
	switch cseq := req.header.get("CSeq"); {
	case cseq == "":
		return reply{res: &response{status: statusBadRequest, reason: "Bad Request: missing CSeq"}, close: true}
	case !validCSeq(cseq):
		return reply{res: &response{status: statusBadRequest, reason: "Bad Request: CSeq must be a number"}, close: true}
	}
	if id := req.header.get("Session"); id != "" && req.method != "OPTIONS" && req.method != "GET_PARAMETER" {
		id, _, _ = strings.Cut(id, ";")
		if c.sess == nil || c.sess.id != strings.TrimSpace(id) {
			return errorReply(req, fmt.Errorf("%w: unknown RTSP session on this connection", errSessionNotFound))
		}
	}
	switch req.method {
	case "OPTIONS":
		return reply{res: &response{status: statusOK, fields: [][2]string{{"Public", "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, GET_PARAMETER, SET_PARAMETER, TEARDOWN"}}}}
	case "DESCRIBE":
		return c.handleDescribe(req)
	case "ANNOUNCE":
		return c.handleAnnounce(req)
	case "SETUP":
		if c.sess != nil && c.sess.record {
			return c.handleSetupRecord(req)
		}
		return c.handleSetupPlay(req)
	case "PLAY":
		return c.handlePlay(req)
	case "RECORD":
		return c.handleRecord(req)
	case "GET_PARAMETER", "SET_PARAMETER": // keep-alives
		return reply{res: c.sessionResponse(statusOK)}
	case "TEARDOWN":
		c.endSession(true)
		return reply{res: &response{status: statusOK}}
	case "PAUSE":
		return errorReply(req, fmt.Errorf("%w: PAUSE (live sessions cannot be paused)", errNotImplemented))
	}
	return errorReply(req, fmt.Errorf("%w: %s", errNotImplemented, truncate(req.method, 20)))
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

// sessionResponse returns a response carrying the Session header, if any.
func (c *serverConn) sessionResponse(status int) *response {
	res := &response{status: status}
	if c.sess != nil && c.sess.id != "" {
		res.add("Session", fmt.Sprintf("%s;timeout=%d", c.sess.id, int(c.s.cfg.SessionTimeout/time.Second)))
	}
	return res
}

// handleFrame routes an interleaved frame: a publisher's RTP to its track; RTCP and
// frames for channels nobody set up are dropped.
func (c *serverConn) handleFrame(ch byte, payload []byte) {
	ss := c.sess
	if ss == nil || !ss.recording {
		return
	}
	m, ok := ss.channels[ch]
	switch {
	case !ok:
		ss.untracked++
	case m != nil:
		m.writeRaw(payload)
	}
}

// target is what a request URL names.
type target struct {
	session     string
	publication string // "" for the session's default (the trainer)
	query       url.Values
}

// urlPathQuery returns what follows the authority of an rtsp:// or rtsps:// URL.
func urlPathQuery(raw string) (string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !strings.EqualFold(scheme, "rtsp") && !strings.EqualFold(scheme, "rtsps") {
		return "", fmt.Errorf("%w: the request URL is not rtsp:// or rtsps://", errBadRequest)
	}
	i := strings.IndexAny(rest, "/?")
	if i < 0 {
		return "/", nil
	}
	if rest[i] == '?' {
		return "/" + rest[i:], nil
	}
	return rest[i:], nil
}

// parseTarget reads "/{session}[/{publication}][?query]".
func parseTarget(pathQuery string) (target, error) {
	path, rawQuery, _ := strings.Cut(pathQuery, "?")
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
func (c *serverConn) check(req *request, t target, op string, roles ...auth.Role) error {
	key := t.session + "|" + op
	tok := presentedToken(req, t.query)
	if tok == "" && c.authed[key] {
		return nil
	}
	if err := c.s.authorize(c.remote.Addr().String(), tok, t.session, roles...); err != nil {
		level := slog.LevelInfo
		if errors.Is(err, auth.ErrMissingToken) {
			level = slog.LevelDebug // clients ask without credentials first, then answer the 401
		}
		c.log.Log(c.ctx, level, "rtsp authentication refused", "session", t.session, "op", op, "err", err)
		return err
	}
	c.authed[key] = true
	return nil
}

// resolve returns the hub session of t.
func (c *serverConn) resolve(t target) (*sfu.Session, error) {
	sess, err := c.s.cfg.Sessions(t.session)
	if err != nil {
		return nil, fmt.Errorf("session %q: %w", t.session, err)
	}
	if sess == nil {
		return nil, fmt.Errorf("session %q: %w", t.session, ErrSessionNotFound)
	}
	return sess, nil
}

// cleanup runs when the connection ends: streams stop, a publisher's lease is
// released (it may reconnect within the grace period).
func (c *serverConn) cleanup() {
	c.close()
	c.endSession(false)
}

// endSession stops the connection's RTSP session. teardown says whether the client
// asked (TEARDOWN: a publisher's publication ends now) or the connection went away
// (the publication pauses for the grace period).
func (c *serverConn) endSession(teardown bool) {
	ss := c.sess
	if ss == nil {
		return
	}
	c.sess = nil
	ss.stop(teardown)
}

// Internal errors mapped to RTSP status codes by statusOf.
var (
	errBadRequest      = errors.New("bad request")
	errNotFound        = errors.New("not found")
	errState           = errors.New("method not valid in this state")
	errNotImplemented  = errors.New("not implemented")
	errSessionNotFound = errors.New("RTSP session not found")
)

// statusOf maps an error to its RTSP status code; the one place that does.
func statusOf(err error) int {
	switch {
	case errors.Is(err, auth.ErrMissingToken), errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrExpiredToken):
		return statusUnauthorized
	case errors.Is(err, auth.ErrWrongSession), errors.Is(err, auth.ErrWrongRole):
		return statusForbidden
	case errors.Is(err, ErrSessionNotFound), errors.Is(err, sfu.ErrSessionClosed), errors.Is(err, errNotFound):
		return statusNotFound
	case errors.Is(err, errSessionNotFound):
		return statusSessionNotFound
	case errors.Is(err, errTooLarge):
		return statusRequestTooLarge
	case errors.Is(err, ErrBadSDP), errors.Is(err, errMalformed), errors.Is(err, errBadRequest):
		return statusBadRequest
	case errors.Is(err, ErrUnsupportedCodec):
		return statusUnsupportedMedia
	case errors.Is(err, errTransport):
		return statusUnsupportedTransport
	case errors.Is(err, errState):
		return statusMethodNotValidHere
	case errors.Is(err, errNotImplemented):
		return statusNotImplemented
	case errors.Is(err, sfu.ErrTooManySubscribers), errors.Is(err, ErrClosed), errors.Is(err, auth.ErrTooManyFailures):
		return statusServiceUnavailable
	}
	return statusInternalError
}

// errorReply answers with err's status; the reason phrase and a text body say what
// was wrong (clients such as ffmpeg print the reason phrase).
func errorReply(req *request, err error) reply {
	code := statusOf(err)
	msg := strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())
	res := &response{status: code, reason: reasonPhrase(code) + ": " + truncate(msg, 300), body: []byte(msg + "\n")}
	res.add("Content-Type", "text/plain; charset=utf-8")
	if code == statusUnauthorized {
		res.add("WWW-Authenticate", `Basic realm="`+realm+`"`)
	}
	var tooMany *auth.TooManyFailuresError
	if errors.As(err, &tooMany) {
		res.add("Retry-After", strconv.Itoa(int(max(tooMany.RetryAfter(), time.Second)/time.Second)))
	}
	return reply{res: res, close: req == nil || code == statusBadRequest && errors.Is(err, errMalformed)}
}
