package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"lectern/auth"
	"lectern/sfu"
)

// Config configures a [Server].
type Config struct {
	// Address is the RTSP (TCP) listen address. Default ":8554"; "127.0.0.1:0" lets
	// the kernel choose (see Server.Addr).
	Address string
	// UDPRTPAddress and UDPRTCPAddress are the server's UDP RTP and RTCP addresses
	// for the UDP transport, e.g. ":8000" and ":8001"; without a host they bind to
	// the host of Address (all interfaces when it has none). Empty (either) disables UDP:
	// readers and publishers must then use TCP (interleaved). When both ports are 0
	// the kernel chooses an even port for RTP and the next one for RTCP, as some
	// clients assume.
	UDPRTPAddress, UDPRTCPAddress string
	// ServerCert and ServerKey are PEM files; when set the server speaks RTSPS (RTSP
	// over TLS) and accepts only the TCP transport, as plain UDP would leak the media.
	ServerCert, ServerKey string
	// Sessions resolves a session id; it returns an error wrapping ErrSessionNotFound
	// for unknown ids (answered 404). Required.
	Sessions func(id string) (*sfu.Session, error)
	// Tokens verifies the signed tokens clients present. Required unless only the
	// admin token is used.
	Tokens *auth.Issuer
	// AdminToken is accepted for every session and operation; empty disables it.
	AdminToken string
	// AuthFailures counts failed authentications per client address; an address
	// past its limit is refused (503 with Retry-After). Share the HTTP layer's, so
	// guesses count wherever they arrive. Nil: no limit.
	AuthFailures *auth.FailureLimiter
	// ReadTimeout closes a connection that sends nothing (or stalls mid-request) for
	// that long while it is not playing, and a publisher whose media stops. Default
	// 10 s.
	ReadTimeout time.Duration
	// WriteTimeout closes a connection whose client does not take a response or
	// packet for that long. Default 10 s.
	WriteTimeout time.Duration
	// SessionTimeout is announced to clients in the Session header; a UDP reader
	// that sends no request (keep-alive) for that long is closed. Default 60 s.
	SessionTimeout time.Duration
	// QueueSize is each reader stream's packet queue length. Default 1024, which holds
	// the fast-start burst of a two-second GOP at 2.5 Mbit/s.
	QueueSize int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is the RTSP server: it serves session tracks to readers and takes
// publishers' media into sessions. Create it with NewServer, then Start; Close stops
// it and waits for every goroutine it started.
type Server struct {
	cfg Config
	log *slog.Logger
	tls *tls.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
	ln      net.Listener
	conns   map[*serverConn]struct{}

	udp *udpListener // nil when UDP is disabled
}

// NewServer checks cfg and fills its defaults; it opens no socket (see Start).
func NewServer(cfg Config) (*Server, error) {
	if cfg.Address == "" {
		cfg.Address = ":8554"
	}
	if cfg.Sessions == nil {
		return nil, errors.New("rtsp: Config.Sessions is required")
	}
	if cfg.Tokens == nil && cfg.AdminToken == "" {
		return nil, errors.New("rtsp: Config.Tokens or Config.AdminToken is required")
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 60 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "rtsp"), conns: map[*serverConn]struct{}{}}
	if (cfg.ServerCert == "") != (cfg.ServerKey == "") {
		return nil, errors.New("rtsp: set both ServerCert and ServerKey, or neither")
	}
	if cfg.ServerCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ServerCert, cfg.ServerKey)
		if err != nil {
			return nil, fmt.Errorf("rtsp: load certificate: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start opens the listeners and starts serving. It returns once the sockets are
// bound, so Addr is valid afterwards.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return errors.New("rtsp: server already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("rtsp: listen %s: %w", s.cfg.Address, err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	if s.cfg.UDPRTPAddress != "" && s.cfg.UDPRTCPAddress != "" && s.tls == nil {
		// UDP addresses without a host (":8000") take the RTSP listen host, so
		// "-rtsp 127.0.0.1:8554" keeps the media sockets on loopback too.
		host, _, _ := net.SplitHostPort(s.cfg.Address)
		u, err := listenUDPPair(withDefaultHost(s.cfg.UDPRTPAddress, host), withDefaultHost(s.cfg.UDPRTCPAddress, host))
		if err != nil {
			_ = ln.Close()
			return err
		}
		s.udp = u
		s.wg.Add(2)
		go func() { defer s.wg.Done(); u.readRTP(s.log) }()
		go func() { defer s.wg.Done(); u.readRTCP() }()
	}
	s.ln, s.started = ln, true
	s.wg.Add(1)
	go s.acceptLoop(ln)
	s.log.Info("rtsp server listening", "addr", ln.Addr().String(), "udp", s.udp != nil, "tls", s.tls != nil)
	return nil
}

// Addr returns the bound TCP address ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// UDPPorts returns the server's UDP RTP and RTCP ports, or zeros when UDP is off.
func (s *Server) UDPPorts() (rtp, rtcp int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return 0, 0
	}
	return s.udp.ports()
}

// Close stops accepting, closes every connection (readers stop, publishers' leases
// are released so they may reconnect within the grace period) and waits for all
// goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	if s.ln != nil {
		_ = s.ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	if s.udp != nil {
		s.udp.close()
	}
	s.wg.Wait()
	return nil
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Warn("rtsp accept", "err", err)
			select { // e.g. too many open files: do not spin
			case <-time.After(100 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		c := newServerConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.run()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Conns returns the number of open RTSP connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// listenUDPPair opens the RTP and RTCP sockets. With port 0 for both, it looks for
// an even RTP port whose successor is free.
func listenUDPPair(rtpAddr, rtcpAddr string) (*udpListener, error) {
	_, rp, err1 := net.SplitHostPort(rtpAddr)
	ch, cp, err2 := net.SplitHostPort(rtcpAddr)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("rtsp: bad UDP addresses %q, %q", rtpAddr, rtcpAddr)
	}
	if rp != "0" || cp != "0" {
		return openUDP(rtpAddr, rtcpAddr)
	}
	ra, err := net.ResolveUDPAddr("udp", rtpAddr)
	if err != nil {
		return nil, fmt.Errorf("rtsp: udp address %s: %w", rtpAddr, err)
	}
	ca, err := net.ResolveUDPAddr("udp", net.JoinHostPort(ch, "0"))
	if err != nil {
		return nil, fmt.Errorf("rtsp: udp address %s: %w", rtcpAddr, err)
	}
	for range 50 {
		a, err := net.ListenUDP("udp", ra)
		if err != nil {
			return nil, fmt.Errorf("rtsp: udp listen %s: %w", rtpAddr, err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port == 65535 {
			_ = a.Close()
			continue
		}
		b, err := net.ListenUDP("udp", &net.UDPAddr{IP: ca.IP, Port: port + 1, Zone: ca.Zone})
		if err != nil {
			_ = a.Close()
			continue
		}
		return newUDPListener(a, b), nil
	}
	return nil, errors.New("rtsp: found no free even/odd UDP port pair")
}

func openUDP(rtpAddr, rtcpAddr string) (*udpListener, error) {
	ra, err := net.ResolveUDPAddr("udp", rtpAddr)
	if err != nil {
		return nil, fmt.Errorf("rtsp: udp address %s: %w", rtpAddr, err)
	}
	ca, err := net.ResolveUDPAddr("udp", rtcpAddr)
	if err != nil {
		return nil, fmt.Errorf("rtsp: udp address %s: %w", rtcpAddr, err)
	}
	a, err := net.ListenUDP("udp", ra)
	if err != nil {
		return nil, fmt.Errorf("rtsp: udp listen %s: %w", rtpAddr, err)
	}
	b, err := net.ListenUDP("udp", ca)
	if err != nil {
		_ = a.Close()
		return nil, fmt.Errorf("rtsp: udp listen %s: %w", rtcpAddr, err)
	}
	return newUDPListener(a, b), nil
}

// withDefaultHost returns addr with host filled in when addr names none.
func withDefaultHost(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || h != "" {
		return addr
	}
	return net.JoinHostPort(host, port)
}
