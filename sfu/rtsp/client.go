package rtsp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rtspClient is the small RTSP client a pull source uses to play a camera: OPTIONS,
// DESCRIBE, SETUP with interleaved TCP transport (it passes NAT and firewalls, and
// cameras all offer it), PLAY, then reading frames with keep-alives. It is used by
// one goroutine; close may be called from any.
//
// Errors never contain the camera URL: it may hold credentials.
type rtspClient struct {
	wmu     sync.Mutex // guards writes and the fields send uses
	nc      net.Conn
	br      *bufio.Reader
	uri     string // the camera URL without user information: what requests name
	auth    clientAuth
	cseq    int
	session string
	timeout time.Duration

	keepaliveMethod string
	keepaliveEvery  time.Duration
	lastKeepalive   time.Time
	frameBuf        []byte
}

// errCamera wraps what a camera answered with an error status.
var errCamera = errors.New("camera refused")

// errNoTCP: the camera answered SETUP without RTP over TCP.
var errNoTCP = fmt.Errorf("%w SETUP: the camera does not offer RTP over TCP", errCamera)

// statusError is a camera's answer with an error status. Redirects (3xx) are not
// followed: credentials go only to the host the source URL names.
type statusError struct {
	method string
	status int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%v %s: status %d", errCamera, e.method, e.status)
}

func (e *statusError) Unwrap() error { return errCamera }

// dialClient connects to the camera named by u (rtsp:// or rtsps://), if allow
// admits the address its host resolves to.
func dialClient(ctx context.Context, u *url.URL, allow *Destinations, tlsConf *tls.Config, timeout time.Duration) (*rtspClient, error) {
	host := u.Host
	if u.Port() == "" {
		port := "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	d := net.Dialer{Timeout: timeout, Control: allow.control(u.Hostname())}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "rtsps" {
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsConf != nil {
			conf = tlsConf.Clone()
		}
		if conf.ServerName == "" {
			conf.ServerName = u.Hostname()
		}
		nc = tls.Client(nc, conf)
	}
	clean := *u
	clean.User = nil
	c := &rtspClient{nc: nc, br: bufio.NewReaderSize(nc, maxLineLen), uri: clean.String(), timeout: timeout,
		keepaliveMethod: "OPTIONS", keepaliveEvery: 30 * time.Second}
	if u.User != nil {
		c.auth.user = u.User.Username()
		c.auth.pass, _ = u.User.Password()
	}
	return c, nil
}

func (c *rtspClient) close() { _ = c.nc.Close() }

// send writes one request.
func (c *rtspClient) send(method, uri string, fields [][2]string, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.cseq++
	all := append([][2]string{{"CSeq", strconv.Itoa(c.cseq)}, {"User-Agent", "Lectern"}}, fields...)
	if a := c.auth.header(method, uri); a != "" {
		all = append(all, [2]string{"Authorization", a})
	}
	if c.session != "" {
		all = append(all, [2]string{"Session", c.session})
	}
	req := &request{method: method, url: uri, body: body}
	timeout := c.timeout
	if method == "TEARDOWN" {
		timeout = time.Second
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.nc.Write(req.marshal(all))
	return err
}

// do sends a request and reads its response, answering one authentication challenge.
func (c *rtspClient) do(method, uri string, fields ...[2]string) (*response, error) {
	for attempt := 0; ; attempt++ {
		if err := c.send(method, uri, fields, nil); err != nil {
			return nil, err
		}
		res, err := c.readResponse()
		if err != nil {
			return nil, err
		}
		if res.status == statusUnauthorized && attempt == 0 && c.auth.user != "" {
			c.wmu.Lock()
			err := c.auth.challenge(res.header.values("WWW-Authenticate"))
			c.wmu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		}
		if res.status != statusOK {
			// The reason phrase is the peer's text: it stays out of errors, which
			// reach the API as a source's last error (see sourceErrorText).
			return nil, &statusError{method: method, status: res.status}
		}
		return res, nil
	}
}

// readResponse reads the next response, skipping interleaved frames before it.
func (c *rtspClient) readResponse() (*response, error) {
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
		b, err := c.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] == interleavedID {
			if _, c.frameBuf, err = readInterleaved(c.br, c.frameBuf); err != nil {
				return nil, err
			}
			continue
		}
		return readResponse(c.br)
	}
}

// describe fetches and parses the camera's SDP; base is the URL its relative
// control attributes are resolved against.
func (c *rtspClient) describe() (desc *sdpDesc, base string, err error) {
	if res, err := c.do("OPTIONS", c.uri); err == nil && strings.Contains(res.header.get("Public"), "GET_PARAMETER") {
		c.keepaliveMethod = "GET_PARAMETER"
	}
	res, err := c.do("DESCRIBE", c.uri, [2]string{"Accept", "application/sdp"})
	if err != nil {
		return nil, "", err
	}
	desc, err = parseSDP(res.body)
	if err != nil {
		return nil, "", err
	}
	base = c.uri
	for _, h := range []string{"Content-Base", "Content-Location"} {
		if v := res.header.get(h); v != "" {
			base = v
			break
		}
	}
	if u, err := url.Parse(base); err == nil && u.User != nil {
		u.User = nil
		base = u.String()
	}
	return desc, base, nil
}

// controlURL resolves a media control attribute against base the way RTSP clients
// do (appending, also after a query, rather than RFC 3986 resolution).
func controlURL(base, control string) string {
	switch {
	case strings.Contains(control, "://"):
		return control
	case control == "" || control == "*":
		return base
	case strings.HasSuffix(base, "/"):
		return base + control
	}
	return base + "/" + control
}

// setup asks for one media stream on the interleaved channels ch, ch+1 and returns
// the RTP channel the camera chose.
func (c *rtspClient) setup(uri string, ch int) (int, error) {
	tr := transport{tcp: true, interleaved: [2]int{ch, ch + 1}}
	res, err := c.do("SETUP", uri, [2]string{"Transport", tr.String()})
	if err != nil {
		return 0, err
	}
	if s := res.header.get("Session"); s != "" {
		id, params, _ := strings.Cut(s, ";")
		c.wmu.Lock()
		c.session = strings.TrimSpace(id)
		c.wmu.Unlock()
		if _, v, ok := strings.Cut(params, "timeout="); ok {
			if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs > 0 {
				c.keepaliveEvery = min(c.keepaliveEvery, time.Duration(secs)*time.Second/2)
			}
		}
	}
	if list, err := parseTransports(res.header.get("Transport")); err == nil && list[0].tcp && list[0].interleaved[0] >= 0 {
		return list[0].interleaved[0], nil
	}
	if res.header.get("Transport") != "" && !strings.Contains(strings.ToUpper(res.header.get("Transport")), "TCP") {
		return 0, errNoTCP
	}
	return ch, nil
}

// play starts the stream.
func (c *rtspClient) play(uri string) error {
	_, err := c.do("PLAY", uri, [2]string{"Range", "npt=0.000-"})
	c.lastKeepalive = time.Now()
	return err
}

// readFrames delivers interleaved frames to onFrame (payload valid during the call)
// until the connection fails or the camera sends nothing for the timeout. It sends
// keep-alives as the camera's session timeout requires.
func (c *rtspClient) readFrames(onFrame func(ch byte, payload []byte)) error {
	for {
		if time.Since(c.lastKeepalive) >= c.keepaliveEvery {
			c.lastKeepalive = time.Now()
			if err := c.send(c.keepaliveMethod, c.uri, nil, nil); err != nil {
				return err
			}
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
		b, err := c.br.Peek(1)
		if err != nil {
			return err
		}
		switch b[0] {
		case interleavedID:
			ch, payload, err := readInterleaved(c.br, c.frameBuf)
			if err != nil {
				return err
			}
			c.frameBuf = payload
			onFrame(ch, payload)
		case 'R': // the answer to a keep-alive
			if _, err := readResponse(c.br); err != nil {
				return err
			}
		default: // a request from the camera (rare): not answered
			if _, err := readRequest(c.br); err != nil {
				return err
			}
		}
	}
}

// teardown says goodbye, best effort. It may run while another goroutine reads.
func (c *rtspClient) teardown() {
	c.wmu.Lock()
	has := c.session != ""
	c.wmu.Unlock()
	if has {
		_ = c.send("TEARDOWN", c.uri, nil, nil)
	}
}
