package testenv

// Network helpers the tests of whole servers share (cmd/lectern, internal/e2e,
// web): free loopback ports, HTTP requests, RTSP readers.

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
)

// FreePort returns a loopback port ("udp" or "tcp") the kernel just chose and
// that is free again, for a server started with its address in its flags.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Do sends a request with client (nil: http.DefaultClient) and returns the
// response with its body read and closed. token is sent as a bearer token and
// contentType as the Content-Type, each unless empty; hdr adds headers, name
// then value. A request that gets no response fails the test.
func Do(t testing.TB, ctx context.Context, client *http.Client, method, url, token, contentType, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// DescribeRTSP starts a gortsplib client reading rawURL over TCP (with
// readTimeout) and sends DESCRIBE; the caller closes the client, whatever the
// error. A URL that does not parse or a client that does not start fails the
// test; DESCRIBE's error is returned, for the caller to say what it asked.
func DescribeRTSP(t testing.TB, rawURL string, readTimeout time.Duration) (*gortsplib.Client, *description.Session, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, ReadTimeout: readTimeout}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		t.Fatal(err)
	}
	desc, _, err := c.Describe(u)
	return c, desc, err
}
