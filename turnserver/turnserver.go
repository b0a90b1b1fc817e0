// Package turnserver is Lectern's embedded TURN server (RFC 8656, pion/turn): it
// lets a classroom whose firewall blocks UDP, or everything but one TCP/TLS port,
// reach the WebRTC edge through a relay on this host. It is not an open relay:
// allocations may only talk to this server's own media addresses, and every
// credential is a short-lived TURN REST API one (HMAC of an expiring username
// with the server secret) minted for one participant.
package turnserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Realm is the TURN realm: clients take it from the server's 401 answer.
const Realm = "lectern"

// MaxCredentialTTL caps how long a minted credential lives, whatever the token says.
const MaxCredentialTTL = 12 * time.Hour

// Config describes the listeners and the relay policy.
type Config struct {
	// UDPAddr and TCPAddr are host:port to listen on for TURN over UDP and TCP
	// (usually the same port, 3478); empty disables that transport.
	UDPAddr string
	TCPAddr string
	// TLSAddr with TLS (a certificate) serves TURN over TLS ("turns:"), e.g. on
	// 443 for classrooms that reach nothing else; empty disables it.
	TLSAddr string
	TLS     *tls.Config
	// RelayIP is the address relays are bound to and announced at; it must be
	// one the WebRTC edge can reach (the edge's own IP, or loopback on one host).
	RelayIP net.IP
	// MediaIPs are this server's own media addresses (the edge's host and
	// public addresses): the only peers an allocation may reach.
	MediaIPs []net.IP
	// MediaPorts, when set, are the edge's UDP and TCP ports: a relay then sends
	// only to those, so a client cannot reach other services on this host's
	// addresses (DNS, a database on loopback) through it. Empty allows any port
	// of MediaIPs.
	MediaPorts []int
	// Secret is the shared secret of the TURN REST API credentials.
	Secret []byte
	// MaxPerClient caps concurrent allocations per client IP (0 = 20).
	MaxPerClient int
	// RelayBitrate caps each UDP relay, in bits per second in each direction
	// (0 = no cap); packets beyond it are dropped and counted.
	RelayBitrate int
	// AllocationLifetime caps how long an allocation lives without a refresh
	// (0 = 10 minutes, pion's default).
	AllocationLifetime time.Duration
	Logger             *slog.Logger
}

// Server is a running TURN server.
type Server struct {
	cfg     Config
	srv     *turn.Server
	allowed map[netip.Addr]struct{}
	udp     net.Addr
	tcp     net.Addr
	tls     net.Addr

	mu       sync.Mutex
	perIP    map[netip.Addr]int
	allocs   atomic.Int64
	refusals atomic.Int64 // failed authentications, quota and permission refusals
	dropped  atomic.Int64 // relayed packets dropped over RelayBitrate
}

// Start opens the listeners and starts serving.
func Start(cfg Config) (*Server, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("turn: empty secret")
	}
	if cfg.RelayIP == nil {
		return nil, errors.New("turn: no relay IP")
	}
	if cfg.MaxPerClient <= 0 {
		cfg.MaxPerClient = 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, allowed: map[netip.Addr]struct{}{}, perIP: map[netip.Addr]int{}}
	for _, ip := range cfg.MediaIPs {
		if a, ok := netip.AddrFromSlice(ip); ok {
			s.allowed[a.Unmap()] = struct{}{}
		}
	}
	gen := func() turn.RelayAddressGenerator {
		return &portFilter{inner: &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.RelayIP, Address: cfg.RelayIP.String()},
			ports: cfg.MediaPorts, refused: &s.refusals, bytesPerSec: cfg.RelayBitrate / 8, dropped: &s.dropped}
	}
	var closers []func() error
	fail := func(err error) (*Server, error) {
		for _, c := range closers {
			_ = c()
		}
		return nil, err
	}
	sc := turn.ServerConfig{
		Realm:              Realm,
		AuthHandler:        s.auth(),
		QuotaHandler:       s.quota,
		AllocationLifetime: cfg.AllocationLifetime,
		LoggerFactory:      quietLoggerFactory(),
		EventHandler: turn.EventHandler{
			// A known username with the wrong password passes the AuthHandler
			// (it only derives the key) and fails the integrity check here.
			// Refusals are logged at debug level only: anyone may send them, the
			// counter shows a flood.
			OnAuth: func(src, _ net.Addr, _, username, _, _ string, verdict bool) {
				if !verdict {
					s.refusals.Add(1)
					cfg.Logger.Debug("turn: credentials refused", "client", src, "username", username)
				}
			},
			// Counted when made, not when the quota passed: an allocation that
			// fails after the quota check (no relay port) must not hold a slot.
			OnAllocationCreated: func(src, _ net.Addr, _, _, _ string, _ net.Addr, _ int) {
				s.allocs.Add(1)
				s.hold(src)
			},
			OnAllocationDeleted: func(src, _ net.Addr, _, _, _ string) {
				s.allocs.Add(-1)
				s.release(src)
			},
		},
	}
	if cfg.UDPAddr != "" {
		pc, err := net.ListenPacket("udp", cfg.UDPAddr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen udp %s: %w", cfg.UDPAddr, err))
		}
		closers = append(closers, pc.Close)
		s.udp = pc.LocalAddr()
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: pc, RelayAddressGenerator: gen(), PermissionHandler: s.permit})
	}
	if cfg.TCPAddr != "" {
		ln, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen tcp %s: %w", cfg.TCPAddr, err))
		}
		closers = append(closers, ln.Close)
		s.tcp = ln.Addr()
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: ln, RelayAddressGenerator: gen(), PermissionHandler: s.permit})
	}
	if cfg.TLSAddr != "" {
		if cfg.TLS == nil {
			return fail(errors.New("turn: TLS address without a certificate"))
		}
		ln, err := tls.Listen("tcp", cfg.TLSAddr, cfg.TLS)
		if err != nil {
			return fail(fmt.Errorf("turn: listen tls %s: %w", cfg.TLSAddr, err))
		}
		closers = append(closers, ln.Close)
		s.tls = ln.Addr()
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: ln, RelayAddressGenerator: gen(), PermissionHandler: s.permit})
	}
	if len(closers) == 0 {
		return nil, errors.New("turn: no listener configured")
	}
	srv, err := turn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("turn: start: %w", err))
	}
	s.srv = srv
	cfg.Logger.Info("turn server listening", "udp", s.udp, "tcp", s.tcp, "tls", s.tls, "relay_ip", cfg.RelayIP)
	return s, nil
}

// Close stops the server and its listeners and relays.
func (s *Server) Close() error { return s.srv.Close() }

// UDPAddr, TCPAddr and TLSAddr return the bound listener addresses (nil when off).
func (s *Server) UDPAddr() net.Addr { return s.udp }
func (s *Server) TCPAddr() net.Addr { return s.tcp }
func (s *Server) TLSAddr() net.Addr { return s.tls }

// Allocations is the number of live allocations.
func (s *Server) Allocations() int64 { return s.allocs.Load() }

// Refusals counts refused authentications, quotas and permissions.
func (s *Server) Refusals() int64 { return s.refusals.Load() }

// Dropped counts relayed packets dropped over the relay bitrate cap.
func (s *Server) Dropped() int64 { return s.dropped.Load() }

// Credentials mints a TURN REST API credential for participant, valid until
// expiry but never more than MaxCredentialTTL from now.
func (s *Server) Credentials(participant string, expiry time.Time) (username, password string) {
	return MintCredentials(s.cfg.Secret, participant, time.Now(), expiry)
}

// MintCredentials is the TURN REST API scheme: username "<expiry-unix>:<participant>",
// password base64(HMAC-SHA1(secret, username)), as pion's LongTermTURNRESTAuthHandler checks.
func MintCredentials(secret []byte, participant string, now, expiry time.Time) (username, password string) {
	if limit := now.Add(MaxCredentialTTL); expiry.IsZero() || expiry.After(limit) {
		expiry = limit
	}
	// pion splits the username on ':'; a participant name holding one would
	// change the user id the server sees, so strip it.
	clean := []rune{}
	for _, r := range participant {
		if r != ':' {
			clean = append(clean, r)
		}
	}
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + string(clean)
	return username, restPassword(secret, username)
}

// ICEServers returns the TURN URLs of this server for clients reaching it as
// host (the public name or IP of this server), with credentials for participant.
func (s *Server) ICEServers(host, participant string, expiry time.Time) []webrtc.ICEServer {
	user, pass := s.Credentials(participant, expiry)
	var urls []string
	if a, ok := s.udp.(*net.UDPAddr); ok {
		urls = append(urls, fmt.Sprintf("turn:%s?transport=udp", net.JoinHostPort(host, strconv.Itoa(a.Port))))
	}
	if a, ok := s.tcp.(*net.TCPAddr); ok {
		urls = append(urls, fmt.Sprintf("turn:%s?transport=tcp", net.JoinHostPort(host, strconv.Itoa(a.Port))))
	}
	if a, ok := s.tls.(*net.TCPAddr); ok {
		urls = append(urls, fmt.Sprintf("turns:%s?transport=tcp", net.JoinHostPort(host, strconv.Itoa(a.Port))))
	}
	if len(urls) == 0 {
		return nil
	}
	return []webrtc.ICEServer{{URLs: urls, Username: user, Credential: pass, CredentialType: webrtc.ICECredentialTypePassword}}
}

func (s *Server) auth() turn.AuthHandler {
	// pion's own log lines for refusals are silenced: they are logged here, structured.
	silent := logging.NewDefaultLoggerFactory()
	silent.DefaultLogLevel = logging.LogLevelDisabled
	inner := turn.LongTermTURNRESTAuthHandler(string(s.cfg.Secret), silent.NewLogger("turn"))
	return func(ra *turn.RequestAttributes) (string, []byte, bool) {
		user, key, ok := inner(ra)
		if !ok {
			s.refusals.Add(1)
			s.cfg.Logger.Debug("turn: credentials refused", "client", ra.SrcAddr, "username", ra.Username)
		}
		return user, key, ok
	}
}

// permit lets an allocation reach only this server's own media addresses: a
// TURN server that relays anywhere would let anyone on the internet use this
// host as a proxy.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	a, ok := netip.AddrFromSlice(peer)
	if ok {
		if _, ok = s.allowed[a.Unmap()]; ok {
			return true
		}
	}
	s.refusals.Add(1)
	s.cfg.Logger.Info("turn: permission refused (not a media address of this server)", "client", client, "peer", peer)
	return false
}

// quota caps concurrent allocations per client address.
func (s *Server) quota(_, _ string, src net.Addr) bool {
	ip := addrIP(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip] >= s.cfg.MaxPerClient {
		s.refusals.Add(1)
		s.cfg.Logger.Info("turn: allocation quota reached", "client", src)
		return false
	}
	return true
}

func (s *Server) hold(src net.Addr) {
	ip := addrIP(src)
	s.mu.Lock()
	s.perIP[ip]++
	s.mu.Unlock()
}

func (s *Server) release(src net.Addr) {
	ip := addrIP(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip] <= 1 {
		delete(s.perIP, ip)
		return
	}
	s.perIP[ip]--
}

func addrIP(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Collector exposes the allocation gauge and refusal counter to Prometheus.
func (s *Server) Collector() prometheus.Collector { return collector{s} }

var (
	allocDesc   = prometheus.NewDesc("lectern_turn_allocations", "Live TURN allocations on the embedded TURN server.", nil, nil)
	droppedDesc = prometheus.NewDesc("lectern_turn_relay_dropped_packets_total", "Relayed packets dropped over the per-allocation bitrate cap.", nil, nil)
	refusalDesc = prometheus.NewDesc("lectern_turn_refusals_total", "TURN requests refused: bad or expired credentials, allocation quota, relay to a foreign address.", nil, nil)
)

type collector struct{ s *Server }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- allocDesc
	ch <- refusalDesc
	ch <- droppedDesc
}
func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(allocDesc, prometheus.GaugeValue, float64(c.s.Allocations()))
	ch <- prometheus.MustNewConstMetric(refusalDesc, prometheus.CounterValue, float64(c.s.Refusals()))
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(c.s.Dropped()))
}

// quietLoggerFactory keeps pion's own logs at error level: Lectern logs the
// refusals itself, structured.
func quietLoggerFactory() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelError
	return f
}
