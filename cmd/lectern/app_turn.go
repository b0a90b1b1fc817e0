package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/turnserver"
)

// turnRelayBitrate caps one relay in each direction: a classroom's stream (a
// top layer of ~2.5 Mbit/s, a screen, audio, retransmissions) fits many times;
// a client abusing the relay as a bandwidth source does not.
const turnRelayBitrate = 20_000_000

// openTURN starts the embedded TURN server when -turn is on, registers its
// metrics, and returns what mints its ICE servers for one participant (nil when
// off: the WHIP/WHEP answers then advertise only -ice-server).
func (a *app) openTURN(metrics *prometheus.Registry) (func(host, participant string, expiry time.Time) []webrtc.ICEServer, error) {
	cfg := a.cfg
	if !cfg.TURN {
		return nil, nil
	}
	secret, err := turnSecret(cfg)
	if err != nil {
		return nil, err
	}
	relayIP := cfg.TURNRelayIP
	if relayIP == "" {
		relayIP = cfg.WebRTCIP
	}
	media, err := mediaIPs(cfg)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(relayIP); ip == nil || ip.IsUnspecified() {
		// The edge binds every interface: relay from one of its ordinary
		// addresses, so relay candidates look like any host's to it.
		relayIP = "127.0.0.1"
		for _, m := range media {
			if m.To4() != nil && !m.IsLoopback() && !m.IsLinkLocalUnicast() && !slices.ContainsFunc(cfg.PublicIPs, func(p string) bool { return net.ParseIP(p).Equal(m) }) {
				relayIP = m.String()
				break
			}
		}
	}
	port := strconv.Itoa(cfg.TURNPort)
	// Relays reach only the edge's media ports (ICE-TCP too, for TURN-TCP relays).
	tc := turnserver.Config{
		UDPAddr: net.JoinHostPort(cfg.WebRTCIP, port), TCPAddr: net.JoinHostPort(cfg.WebRTCIP, port),
		RelayIP: net.ParseIP(relayIP), MediaIPs: media, MediaPorts: []int{cfg.UDPPort}, Secret: secret,
		MaxPerClient: cfg.TURNPerIP, AllocationLifetime: cfg.TURNLifetime, Logger: a.log,
		RelayBitrate: turnRelayBitrate,
	}
	if cfg.TCPPort > 0 {
		tc.MediaPorts = append(tc.MediaPorts, cfg.TCPPort)
	}
	if cfg.TURNTLSPort > 0 {
		cert, err := tls.LoadX509KeyPair(cfg.TURNCert, cfg.TURNKey)
		if err != nil {
			return nil, fmt.Errorf("turn tls: %w", err)
		}
		tc.TLSAddr = net.JoinHostPort(cfg.WebRTCIP, strconv.Itoa(cfg.TURNTLSPort))
		tc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	srv, err := turnserver.Start(tc)
	if err != nil {
		return nil, err
	}
	a.cleanup.push("turn", func(context.Context) error { return srv.Close() })
	metrics.MustRegister(srv.Collector())
	return srv.ICEServers, nil
}

// mediaIPs are the addresses the WebRTC edge may be reached at: its bind address,
// or every local address when it binds all, plus the announced public ones. TURN
// relays to nothing else.
func mediaIPs(cfg config) ([]net.IP, error) {
	var out []net.IP
	if ip := net.ParseIP(cfg.WebRTCIP); ip != nil && !ip.IsUnspecified() {
		out = append(out, ip)
	} else {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil, fmt.Errorf("turn: local addresses: %w", err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				out = append(out, n.IP)
			}
		}
	}
	for _, p := range cfg.PublicIPs {
		if ip := net.ParseIP(p); ip != nil {
			out = append(out, ip)
		}
	}
	return out, nil
}

// turnSecret returns -turn-secret, or the one persisted in the data dir,
// generated on first start so credentials handed out survive a restart.
func turnSecret(cfg config) ([]byte, error) {
	return persistedSecret(cfg.TURNSecret, cfg.DataDir, "turn secret", 32, "")
}
