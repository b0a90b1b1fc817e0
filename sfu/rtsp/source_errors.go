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

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

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

		badStatus      liberrors.ErrClientBadStatusCode
		authSetup      liberrors.ErrClientAuthSetup
		sdpInvalid     liberrors.ErrClientSDPInvalid
		noContentType  liberrors.ErrClientContentTypeMissing
		badContentType liberrors.ErrClientContentTypeUnsupported
		reqTimeout     liberrors.ErrClientRequestTimedOut
		tcpTimeout     liberrors.ErrClientTCPTimeout
		udpTimeout     liberrors.ErrClientUDPTimeout
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
		case int(base.StatusUnauthorized):
			return fmt.Sprintf("unauthorized (%s answered 401): check the user name and password in the source URL", status.method)
		case int(base.StatusForbidden):
			return fmt.Sprintf("forbidden (%s answered 403)", status.method)
		case int(base.StatusNotFound):
			return fmt.Sprintf("stream not found (%s answered 404): check the path of the source URL", status.method)
		}
		return fmt.Sprintf("camera refused %s (status %d)", status.method, status.status)
	case errors.As(err, &badStatus): // a request the client made on its own (a keep-alive, the switch to TCP)
		return fmt.Sprintf("camera refused a request (status %d)", int(badStatus.Code))
	case errors.As(err, &authSetup):
		return "unauthorized: the camera asks for an authentication scheme Lectern does not speak (Basic and Digest are supported)"
	case errors.Is(err, errNotRTSP):
		return "not an RTSP server"
	case errors.As(err, &sdpInvalid), errors.As(err, &noContentType), errors.As(err, &badContentType):
		return "not an RTSP camera: its stream description (SDP) is unusable"
	case errors.As(err, &reqTimeout), errors.As(err, &tcpTimeout), errors.As(err, &udpTimeout):
		return "timeout"
	case errors.Is(err, ErrUnsupportedCodec):
		if strings.Contains(err.Error(), "H.265 is not supported") {
			return "unsupported codec: H.265 is not supported; set the camera to H.264"
		}
		return "unsupported codec: Lectern takes H.264 video with Opus, G.711 or AAC audio"
	case errors.Is(err, ErrBadSDP):
		return "not an RTSP camera: its stream description (SDP) is unusable"
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
