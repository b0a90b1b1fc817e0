package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"lectern/auth"
	"lectern/sfu"
)

// Config configures a [Server].
type Config struct {
	// Address is the RTSP (TCP) listen address. Default ":8554"; "127.0.0.1:0" lets
	// the kernel choose (see Server.Addr).
	Address string
	// UDPRTPAddress and UDPRTCPAddress are the server's UDP RTP and RTCP addresses
	// for the UDP transport, e.g. ":8000" and ":8001" (an even RTP port and the next
	// one for RTCP, which gortsplib and many clients assume); without a host they
	// bind to the host of Address (all interfaces when it has none). Empty (either)
	// disables UDP: readers and publishers must then use TCP (interleaved). When both
	// ports are 0 the kernel chooses an even port for RTP and the next one for RTCP.
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
	// SessionTimeout bounds the silence of a connection that plays over UDP (its
	// keep-alives come at least that often). Default 60 s, what gortsplib announces.
	SessionTimeout time.Duration
	// QueueSize is the packet queue of each published track feeding the readers of a
	// publication. Default 1024, which holds the fast-start burst of a two-second GOP
	// at 2.5 Mbit/s.
	QueueSize int
	// Prepare, when set, runs before a reader's stream is planned when the
	// publication it names is not live on this node (a cluster's edge pulls it
	// from the node it is published on); publication is "" for the session's
	// default (/{session}: the programme, else the trainer's). An error refuses
	// the reader with 503 Service Unavailable and its reason. It must return when
	// ctx ends.
	Prepare func(ctx context.Context, session, publication string) error
	// Programme tells that the server makes each session's programme
	// (ProgrammePublication) once its trainer publishes, so that /{session} waits
	// for it, a moment at most, rather than play the trainer's tracks in its
	// place: a DESCRIBE made after the trainer's first track and before the
	// programme's is held until the programme has its tracks (up to 3 s after the
	// trainer started). Either way a programme that is live but still lacks the
	// video or audio the trainer has is waited for (up to 3 s after it started).
	Programme bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	programmeSetup time.Duration // default programmeSetup; tests shorten it
}

// Server is the RTSP server: it serves session tracks to readers and takes
// publishers' media into sessions. The protocol is gortsplib's; Lectern's part is
// the handler (tokens, the /{session}[/{publication}] mapping, the trainer lease, the
// H.264 bridge, one ServerStream per publication fed from sfu queues). Create it with
// NewServer, then Start; Close stops it and waits for every goroutine it started.
type Server struct {
	cfg Config
	log *slog.Logger
	tls *tls.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // stream feeders

	gs  *gortsplib.Server
	udp *udpPair // nil when UDP is off
	// udpBatch sends the direct UDP readers' RTP from udp.rtp (sendmmsg).
	udpBatch *udpSender
	writers  *connWriters // send TCP readers' packets; nil before Start

	mu      sync.Mutex
	started bool
	closed  bool
	ln      net.Listener
	conns   map[*gortsplib.ServerConn]*connState
	streams map[streamKey]*pubStream

	programmeWaits atomic.Int32 // DESCRIBEs waiting for the programme (tests)

	readerLost [2]atomic.Uint64 // packets readers reported lost, by transport (reader_reports.go)
}

// udpPair is the server's UDP RTP and RTCP sockets, opened by Lectern (so the
// kernel may choose a free even/odd pair, bound to the RTSP host) and handed to
// gortsplib through its ListenPacket hook.
type udpPair struct{ rtp, rtcp *net.UDPConn }

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
	if cfg.programmeSetup <= 0 {
		cfg.programmeSetup = programmeSetup
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "rtsp"),
		conns: map[*gortsplib.ServerConn]*connState{}, streams: map[streamKey]*pubStream{}}
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
	if cfg.UDPRTPAddress != "" && cfg.UDPRTCPAddress != "" {
		rp, err1 := portOf(cfg.UDPRTPAddress)
		cp, err2 := portOf(cfg.UDPRTCPAddress)
		switch {
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("rtsp: bad UDP addresses %q, %q", cfg.UDPRTPAddress, cfg.UDPRTCPAddress)
		case rp == 0 && cp == 0:
		case rp%2 != 0 || cp != rp+1:
			return nil, fmt.Errorf("rtsp: UDP ports %d and %d: the RTP port must be even and the RTCP port the next one", rp, cp)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
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
	gs := &gortsplib.Server{
		Handler:      &handler{s: s},
		RTSPAddress:  ln.Addr().String(),
		ReadTimeout:  s.cfg.ReadTimeout,
		WriteTimeout: s.cfg.WriteTimeout,
		// The server's own TLS is done by Lectern's listener wrapper (below), so the
		// connection wrapper sees plain RTSP and can answer bad input.
		WriteQueueSize: 1024,
		Listen: func(string, string) (net.Listener, error) {
			return &lecternListener{Listener: ln, s: s}, nil
		},
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
		s.udp, s.udpBatch = u, newUDPSender(u.rtp)
		gs.UDPRTPAddress, gs.UDPRTCPAddress = u.rtp.LocalAddr().String(), u.rtcp.LocalAddr().String()
		gs.UDPReadBufferSize = 4 << 20
		gs.ListenPacket = func(_, addr string) (net.PacketConn, error) {
			switch addr {
			case gs.UDPRTPAddress:
				return u.rtp, nil
			case gs.UDPRTCPAddress:
				return u.rtcp, nil
			}
			return nil, fmt.Errorf("rtsp: unexpected UDP address %s", addr)
		}
	}
	s.writers = newConnWriters()
	if err := gs.Start(); err != nil {
		s.writers.close()
		s.writers = nil
		_ = ln.Close()
		if s.udp != nil {
			s.udp.close()
			s.udp, s.udpBatch = nil, nil
		}
		return fmt.Errorf("rtsp: start: %w", err)
	}
	s.gs, s.ln, s.started = gs, ln, true
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
	return s.udp.rtp.LocalAddr().(*net.UDPAddr).Port, s.udp.rtcp.LocalAddr().(*net.UDPAddr).Port
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
	gs, writers := s.gs, s.writers
	s.mu.Unlock()
	if gs != nil {
		gs.Close() // closes the listener, the connections, the sessions and the UDP sockets
	}
	if writers != nil {
		writers.close()
	}
	s.mu.Lock()
	streams := make([]*pubStream, 0, len(s.streams))
	for k, ps := range s.streams {
		streams = append(streams, ps)
		delete(s.streams, k)
	}
	s.mu.Unlock()
	for _, ps := range streams {
		ps.close()
	}
	s.wg.Wait()
	return nil
}

// Conns returns the number of open RTSP connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// listenUDPPair opens the RTP and RTCP sockets. With port 0 for both, it looks for
// an even RTP port whose successor is free.
func listenUDPPair(rtpAddr, rtcpAddr string) (*udpPair, error) {
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
		return &udpPair{rtp: a, rtcp: b}, nil
	}
	return nil, errors.New("rtsp: found no free even/odd UDP port pair")
}

func openUDP(rtpAddr, rtcpAddr string) (*udpPair, error) {
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
	return &udpPair{rtp: a, rtcp: b}, nil
}

func (u *udpPair) close() {
	_ = u.rtp.Close()
	_ = u.rtcp.Close()
}

// withDefaultHost returns addr with host filled in when addr names none.
func withDefaultHost(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || h != "" {
		return addr
	}
	return net.JoinHostPort(host, port)
}
