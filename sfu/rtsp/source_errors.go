package rtsp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"lectern/sfu"
)

// sourceErrorText is a source's last error as the API shows it: a phrase from a
// fixed vocabulary, never the peer's bytes nor the URL. A source makes the server
// connect where someone said; echoing what answered (the banner of whatever listens
// there, a line of an HTTP response) would turn the API into a scanner's eyes. The
// full error goes to the server log.
func sourceErrorText(err error) string {
	var (
		status *statusError
		dns    *net.DNSError
		cert   *tls.CertificateVerificationError
		x509u  x509.UnknownAuthorityError
		x509h  x509.HostnameError
		tlsHdr tls.RecordHeaderError
		tlsAl  tls.AlertError
		ne     net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrDestinationRefused):
		return "destination not allowed (the server's -rtsp-source-allow decides where sources may connect)"
	case errors.Is(err, errReplaced):
		return errReplaced.Error()
	case errors.Is(err, sfu.ErrSessionClosed):
		return "the session ended"
	case errors.Is(err, context.Canceled):
		return "stopped"
	case errors.As(err, &status):
		switch status.status {
		case statusUnauthorized:
			return fmt.Sprintf("unauthorized (%s answered 401): check the user name and password in the source URL", status.method)
		case statusForbidden:
			return fmt.Sprintf("forbidden (%s answered 403)", status.method)
		case statusNotFound:
			return fmt.Sprintf("stream not found (%s answered 404): check the path of the source URL", status.method)
		}
		return fmt.Sprintf("camera refused %s (status %d)", status.method, status.status)
	case errors.Is(err, errNoTCP):
		return "the camera does not offer RTP over TCP"
	case errors.Is(err, errAuthScheme):
		return "unauthorized: the camera asks for an authentication scheme Lectern does not speak (Basic and Digest MD5 are supported)"
	case errors.Is(err, ErrUnsupportedCodec):
		if strings.Contains(err.Error(), "H.265 is not supported") {
			return "unsupported codec: H.265 is not supported; set the camera to H.264"
		}
		return "unsupported codec: Lectern takes H.264 video with Opus, G.711 or AAC audio"
	case errors.Is(err, ErrBadSDP):
		return "not an RTSP camera: its stream description (SDP) is unusable"
	case errors.Is(err, errMalformed):
		return "not an RTSP server"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "host not found"
		}
		return "name resolution failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &cert), errors.As(err, &x509u), errors.As(err, &x509h):
		return "TLS: the camera's certificate is not trusted"
	case errors.As(err, &tlsHdr), errors.As(err, &tlsAl):
		return "TLS handshake failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection closed by the peer"
	}
	return "connection failed"
}
