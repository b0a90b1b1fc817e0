package peer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// Config configures an [Edge].
type Config struct {
	// UDPAddr is the one UDP address every ICE connection uses (through pion's UDP
	// mux), e.g. ":8189"; port 0 lets the kernel choose. Default ":8189".
	UDPAddr string
	// TCPAddr is the ICE-TCP listen address, for classrooms whose network blocks UDP;
	// empty disables ICE-TCP.
	TCPAddr string
	// PublicIPs replace the host candidates' addresses (NAT 1:1), e.g. the public IP
	// of a cloud VM.
	PublicIPs []string
	// ICETimeout closes a connection that has not connected by then. Default 15 s.
	ICETimeout time.Duration
	// ICEServers are handed to clients (WHIP/WHEP Link headers); the edge itself needs
	// none.
	ICEServers []webrtc.ICEServer
	// QueueSize is each video downtrack's packet queue length; default 1536, room
	// for the fast-start burst of a full keyframe cache (1024 packets, about 3.5 s at
	// 2.5 Mbit/s) and what arrives while it is sent. Audio queues are a sixth of it.
	QueueSize int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// DisableAdaptation turns off the per-subscriber bandwidth estimate (adapt.go):
	// every subscriber then gets the best layer unless it pins one, and every NACK is
	// answered while the packet is cached. For comparisons (lectern -adaptation=false).
	DisableAdaptation bool
}

// Edge owns the WebRTC side: the shared API and sockets, and every WHIP/WHEP
// resource. Close stops it all.
type Edge struct {
	cfg Config
	log *slog.Logger
	// pcConfig carries one DTLS certificate for every connection: pion would
	// otherwise generate a key pair per peer connection (CPU on each join, memory
	// for each copy).
	pcConfig webrtc.Configuration
	pubAPI   *webrtc.API // WHIP: NACK generation, receiver reports, TWCC feedback
	subAPI   *webrtc.API // relay senders (relay.go): the subscribers' settings, pion's RTCP buffers
	relayAPI *webrtc.API // cluster relay pulls: pubAPI on sockets of their own (relay.go)
	udp      *batchConn
	udpMux   ice.UDPMux
	egress   *egress
	tcp      net.Listener
	tcpMux   ice.TCPMux

	// A WHEP connection's API is made per connection from these (subscriberAPI):
	// its RTCP goes straight to its downtracks (rtcpsink.go).
	subSettings     webrtc.SettingEngine
	subMedia        *webrtc.MediaEngine
	subInterceptors *interceptor.Registry

	mu        sync.Mutex
	closed    bool
	resources map[string]*Resource
	keyed     map[string]*Resource // by SubscribeOptions.Key: the newest holder of each place
	wg        sync.WaitGroup

	adaptStats adaptStats
}

// New opens the edge's sockets and builds its webrtc.API.
func New(cfg Config) (*Edge, error) {
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = ":8189"
	}
	if cfg.ICETimeout <= 0 {
		cfg.ICETimeout = 15 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1536
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Edge{cfg: cfg, log: cfg.Logger.With("component", "webrtc"), resources: map[string]*Resource{}, keyed: map[string]*Resource{}}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dtls key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("dtls certificate: %w", err)
	}
	e.pcConfig = webrtc.Configuration{Certificates: []webrtc.Certificate{*cert}}
	pionLogs := newPionLogs(cfg.Logger)
	laddr, err := net.ResolveUDPAddr("udp", cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("webrtc udp address %s: %w", cfg.UDPAddr, err)
	}
	sock, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("webrtc udp listen %s: %w", cfg.UDPAddr, err)
	}
	// Every publisher, classroom and relay shares this socket: the kernel's
	// default receive buffer (~208 KB) holds well under a second of a few
	// lectures, so a pause of the reading goroutine (a GC, a busy machine) would
	// drop ingest that no one can retransmit (audio is not NACKed). Ask for more;
	// the kernel caps it at net.core.rmem_max (raise that on a busy node).
	_ = sock.SetReadBuffer(udpSocketBuffer)
	_ = sock.SetWriteBuffer(udpSocketBuffer)
	udp, err := newBatchConn(sock)
	if err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("webrtc udp socket: %w", err)
	}
	e.udp = udp
	hostNet, err := newHostNet()
	if err != nil {
		_ = udp.Close()
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	e.udpMux = newHostAddrMux(ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: pionLogs.NewLogger("udpmux"), UDPConn: udp, Net: hostNet}),
		udp.LocalAddr().(*net.UDPAddr).IP.IsLoopback())

	se := webrtc.SettingEngine{LoggerFactory: pionLogs}
	se.SetNet(hostNet) // one interface list for all connections (udpmux.go)
	// mDNS candidates hide a browser's address from other pages; a server has nothing
	// to hide, and each connection would pay two multicast sockets and four goroutines.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICEUDPMux(e.udpMux)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCPAddr != "" {
		tcp, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			_ = udp.Close()
			return nil, fmt.Errorf("webrtc ice-tcp listen %s: %w", cfg.TCPAddr, err)
		}
		e.tcp = tcp
		e.tcpMux = webrtc.NewICETCPMux(pionLogs.NewLogger("tcpmux"), tcp, 64)
		se.SetICETCPMux(e.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	if ip := udp.LocalAddr().(*net.UDPAddr).IP; ip.IsLoopback() {
		se.SetIncludeLoopbackCandidate(true)
	}
	if len(cfg.PublicIPs) > 0 {
		// Replace each host candidate's address by the public ones (1:1 NAT).
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{External: cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace})
		if err != nil {
			e.closeSockets()
			return nil, fmt.Errorf("webrtc public IPs %v: %w", cfg.PublicIPs, err)
		}
	}
	se.SetReceiveMTU(1500)

	pubMedia, subMedia := &webrtc.MediaEngine{}, &webrtc.MediaEngine{}
	if err := registerCodecs(pubMedia); err != nil {
		e.closeSockets()
		return nil, err
	}
	if err := registerCodecs(subMedia); err != nil {
		e.closeSockets()
		return nil, err
	}
	if err := registerRED(subMedia); err != nil { // subscribers only: publishers send plain Opus
		e.closeSockets()
		return nil, err
	}
	pubInterceptors, err := publisherInterceptors(pubMedia)
	if err != nil {
		e.closeSockets()
		return nil, err
	}
	subInterceptors, err := subscriberInterceptors()
	if err != nil {
		e.closeSockets()
		return nil, err
	}
	e.egress = newEgress(udp)
	e.pubAPI = webrtc.NewAPI(webrtc.WithMediaEngine(pubMedia), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(pubInterceptors))
	e.subAPI = webrtc.NewAPI(webrtc.WithMediaEngine(subMedia), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(subInterceptors))
	e.subSettings, e.subMedia, e.subInterceptors = se, subMedia, subInterceptors
	e.relayAPI = newRelayAPI(se, pubMedia, pubInterceptors, udp.LocalAddr().(*net.UDPAddr).IP)
	return e, nil
}

// subscriberInterceptors returns what a WHEP connection needs from pion: nothing.
// Sender reports come from the downtracks themselves (see downTrack.sendReport).
// There is deliberately no NACK responder: it would keep a retransmission buffer per
// subscriber stream, where the track's shared cache answers NACKs for all of them;
// and none of the receive-side interceptors, whose per-connection tickers would
// run for streams that never arrive.
func subscriberInterceptors() (*interceptor.Registry, error) {
	return &interceptor.Registry{}, nil
}

// publisherInterceptors returns what a WHIP connection needs: NACK generation and
// receiver reports towards the publisher, and TWCC feedback so a browser's congestion
// control can raise the trainer's bitrate. It also registers the header extensions
// of RFC 8853 simulcast on the publisher's media engine (see
// registerSimulcastExtensions).
func publisherInterceptors(m *webrtc.MediaEngine) (*interceptor.Registry, error) {
	if err := registerSimulcastExtensions(m); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("nack generator: %w", err)
	}
	ir.Add(gen)
	recv, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, fmt.Errorf("receiver reports: %w", err)
	}
	ir.Add(recv)
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("twcc extension: %w", err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("twcc extension: %w", err)
	}
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("twcc feedback: %w", err)
	}
	ir.Add(tw)
	return ir, nil
}

// queueSize is the downtrack queue length for a kind of media.
func (e *Edge) queueSize(k sfu.Kind) int {
	if k == sfu.KindAudio {
		return max(e.cfg.QueueSize/6, 32)
	}
	return e.cfg.QueueSize
}

// UDPAddr returns the address of the ICE UDP socket.
func (e *Edge) UDPAddr() net.Addr { return e.udp.LocalAddr() }

// TCPAddr returns the ICE-TCP listen address, or nil when disabled.
func (e *Edge) TCPAddr() net.Addr {
	if e.tcp == nil {
		return nil
	}
	return e.tcp.Addr()
}

// ICEServers returns the servers to advertise to clients.
func (e *Edge) ICEServers() []webrtc.ICEServer { return e.cfg.ICEServers }

// Resource returns a live WHIP/WHEP resource by id.
func (e *Edge) Resource(id string) (*Resource, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.resources[id]
	return r, ok
}

// Resources returns the number of live resources.
func (e *Edge) Resources() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.resources)
}

func (e *Edge) add(r *Resource) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.resources[r.id] = r
	e.wg.Add(1)
	if r.key != "" {
		// Another offer for the same place may have come in since closeKeyed: the
		// newest one wins here too.
		if old := e.keyed[r.key]; old != nil {
			old.log.Info("replaced by a newer connection of the same participant")
			old.cancel()
		}
		e.keyed[r.key] = r
	}
	return nil
}

func (e *Edge) forget(r *Resource) {
	e.mu.Lock()
	delete(e.resources, r.id)
	if r.key != "" && e.keyed[r.key] == r {
		delete(e.keyed, r.key)
	}
	e.mu.Unlock()
}

// closeKeyed closes the resource holding place key, if any, and waits until it has
// closed (and so given its subscriber place back).
func (e *Edge) closeKeyed(key string) {
	e.mu.Lock()
	old := e.keyed[key]
	e.mu.Unlock()
	if old != nil {
		old.log.Info("replaced by a newer connection of the same participant")
		old.Close()
	}
}

// Close closes every connection and the sockets, and waits for every goroutine the
// edge started.
func (e *Edge) Close() error {
	e.mu.Lock()
	e.closed = true
	list := make([]*Resource, 0, len(e.resources))
	for _, r := range e.resources {
		list = append(list, r)
	}
	e.mu.Unlock()
	for _, r := range list {
		r.Close()
	}
	e.wg.Wait()
	e.egress.close()
	e.closeSockets()
	return nil
}

func (e *Edge) closeSockets() {
	if e.udpMux != nil {
		_ = e.udpMux.Close()
	}
	if e.udp != nil {
		_ = e.udp.Close()
	}
	if e.tcpMux != nil {
		_ = e.tcpMux.Close()
	}
	if e.tcp != nil {
		_ = e.tcp.Close()
	}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// udpSocketBuffer is the receive and send buffer the shared WebRTC socket asks for
// (8 MiB: seconds of a node's ingest; the kernel caps it at net.core.rmem_max and
// wmem_max).
const udpSocketBuffer = 8 << 20
