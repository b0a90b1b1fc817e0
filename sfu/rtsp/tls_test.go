package rtsp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/sfu"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lectern test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRTSPS: with a certificate the server speaks RTSP over TLS; ffmpeg reads it,
// a pull source trusting that certificate pulls from it, and UDP is refused.
func TestRTSPS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	f := newFixture(t, func(c *Config) { c.ServerCert, c.ServerKey = certFile, keyFile })
	playIntoSession(t, f.ctx, f.sess, loadClip(t), "packetization-mode=1;profile-level-id=42e01f")
	waitFor(f.ctx, t, "a keyframe in the track cache", func() bool { return f.sess.Publications()[0].Tracks[0].Packets > 40 })
	tok := f.token(t, testSession, auth.RoleSite)
	url := "rtsps://" + f.srv.Addr() + "/" + testSession + "?token=" + tok

	t.Run("ffmpeg", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		defer cancel()
		out, stderr, err := ffmpeg(ctx, t, "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-t", "3", "-f", "null", "-", "-progress", "pipe:1")
		if frames, _ := strconv.Atoi(lastProgress(out, "frame")); err != nil || frames < 60 {
			t.Fatalf("ffmpeg over RTSPS: %v, %d frames\n%s", err, frames, stderr)
		}
	})
	t.Run("udp refused", func(t *testing.T) {
		nc, err := tls.Dial("tcp", f.srv.Addr(), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
		defer nc.Close()
		res := c.do("SETUP", url+"/trackID=0", [][2]string{{"Transport", "RTP/AVP;unicast;client_port=5000-5001"}}, "")
		if res.status != 461 {
			t.Fatalf("UDP SETUP over RTSPS: %d %s", res.status, res.reason)
		}
	})
	t.Run("pull source", func(t *testing.T) {
		other := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
		defer other.CloseAll()
		sources := NewSources(SourcesConfig{Sessions: sessionsOf(other, "copy"), Allow: loopbackAllowed(t), TLSConfig: &tls.Config{RootCAs: pool}, Logger: testLogger(), Timeout: 2 * time.Second})
		defer sources.Close()
		if _, err := sources.Add("copy", SourceSpec{URL: "rtsps://x:" + testAdmin + "@" + f.srv.Addr() + "/" + testSession, Name: "tls-cam", As: "trainer"}); err != nil {
			t.Fatal(err)
		}
		waitFor(f.ctx, t, "packets from the RTSPS camera", func() bool {
			p, ok := other.Session("copy").Publication(sfu.TrainerPublication)
			return ok && len(p.Tracks()) == 2 && p.Tracks()[0].Packets() > 30
		})
		if st := sourceState(sources, "copy"); st.State != StateLive || strings.Contains(st.URL, testAdmin) {
			t.Fatalf("source %+v", st)
		}
	})
}
