package rtsp

import (
	"context"
	"net"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
)

// sourceVocabulary is every last error a camera's answer may give a source.
var sourceVocabulary = regexp.MustCompile(`^(` +
	`camera refused DESCRIBE \(status \d+\)|` +
	`camera refused a request \(status \d+\)|` +
	`unauthorized \(DESCRIBE answered \d+\): check the user name and password in the source URL|` +
	`forbidden \(DESCRIBE answered \d+\)|` +
	`stream not found \(DESCRIBE answered \d+\): check the path of the source URL|` +
	`unauthorized: the camera asks for an authentication scheme Lectern does not speak \(Basic and Digest are supported\)|` +
	`not an RTSP server|` +
	`not an RTSP camera: its stream description \(SDP\) is unusable|` +
	`unsupported codec: H\.265 is not supported; set the camera to H\.264|` +
	`unsupported codec: Lectern takes H\.264 video with Opus, G\.711 or AAC audio|` +
	`timeout|` +
	`connection closed by the peer|` +
	`connection failed)$`)

// FuzzCameraAnswer: whatever a peer answers a pull source's requests with (each one
// gets data), the client neither panics nor hangs, and the source's last error is a
// phrase of the fixed vocabulary, never the peer's bytes (issue 9, 10e).
func FuzzCameraAnswer(f *testing.F) {
	for _, seed := range []string{
		"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n",
		"RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc\", qop=\"auth\"\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n",
		"RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Negotiate xyz\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n",
		"RTSP/1.0 200 OK\r\nContent-Type: application/sdp\r\nContent-Length: 80\r\n\r\nv=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n",
		"RTSP/1.0 302 Moved\r\nLocation: rtsp://169.254.169.254/x\r\n\r\n",
		"RTSP/1.0 200 OK\r\nTransport: RTP/AVP;unicast;source=169.254.169.254;server_port=1-2\r\n\r\n",
		"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n",
		"RTSP/1.0 99999999999999999999 X\r\n\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
		"\r\nRTSP/1.0 404 Not Found\r\n\r\n",
		"$\x00\x00\x04abcd",
	} {
		f.Add([]byte(seed))
	}
	u, _ := url.Parse("rtsp://user:pw@cam.example/live")
	bu, _ := base.ParseURL(u.String())
	f.Fuzz(func(t *testing.T, data []byte) {
		camSide, clientSide := net.Pipe()
		served := make(chan struct{})
		go func() { // the peer: data in answer to every request
			defer close(served)
			defer camSide.Close()
			rc := conn.NewConn(camSide)
			for {
				if _, err := rc.ReadRequest(); err != nil {
					return
				}
				if _, err := camSide.Write(data); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// A short timeout: an answer that never completes costs each run that long.
		c, link := newCameraClient(ctx, u, SourcesConfig{Timeout: 20 * time.Millisecond}, nil, testLogger())
		c.DialContext = func(context.Context, string, string) (net.Conn, error) {
			return &cameraConn{Conn: clientSide, link: link, sniffing: true}, nil
		}
		if err := c.Start2(); err != nil {
			t.Fatal(err)
		}
		desc, _, err := c.Describe(bu)
		c.Close()
		_ = clientSide.Close()
		<-served
		if err == nil {
			if _, _, err = planDescription(desc); err == nil {
				return
			}
		} else {
			err = requestError("DESCRIBE", err)
		}
		if txt := sourceErrorText(err); !sourceVocabulary.MatchString(txt) {
			t.Fatalf("last error %q (from %v) is not in the vocabulary", txt, err)
		}
	})
}
