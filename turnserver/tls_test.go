package turnserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"lectern/turnserver"
)

// newCert returns a self-signed certificate for 127.0.0.1 and its PEM.
func newCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lectern turn test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	cert, _, err := newCert()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return cert, pool
}

// TestTURNOverTLS: a classroom that reaches only a TLS port allocates a relay
// over TURN-TLS (turns:) with minted credentials and reaches the media address;
// a foreign peer is refused there as on UDP.
func TestTURNOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	s, err := turnserver.Start(turnserver.Config{TLSAddr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		RelayIP: net.IPv4(127, 0, 0, 1), MediaIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	servers := s.ICEServers("127.0.0.1", "classroom-1", time.Now().Add(time.Hour))
	if len(servers) != 1 || len(servers[0].URLs) != 1 || servers[0].URLs[0] != "turns:"+s.TLSAddr().String()+"?transport=tcp" {
		t.Fatalf("ICE servers %+v", servers)
	}
	conn, err := tls.Dial("tcp", s.TLSAddr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cred, _ := servers[0].Credential.(string)
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: s.TLSAddr().String(), STUNServerAddr: s.TLSAddr().String(),
		Username: servers[0].Username, Password: cred, Realm: turnserver.Realm, Conn: turn.NewSTUNConn(conn)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate over TLS: %v", err)
	}
	defer relay.Close()
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 3478}); err == nil {
		t.Error("permission to a foreign address granted over TLS")
	}
	media, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	if _, err := relay.WriteTo([]byte("over tls"), media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = media.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := media.ReadFrom(buf); err != nil || string(buf[:n]) != "over tls" {
		t.Fatalf("relayed over TLS: %q, %v", buf[:n], err)
	}
}
