package web

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"lectern/auth"
	"lectern/internal/limit"
)

// Default limits of WHEP offers still connecting (answered, their peer not yet
// connected). Without them one viewer link filled a session with offers that never
// connect, and kept it full by repeating them.
//
// Per token: a viewer link is often shared by a hall's screens, which may all
// (re)connect at once after a network cut; a connection settles in about a second,
// so 8 at once leaves them room. Per address: a province's classrooms often reach
// the server through one NAT address, each with its own token, hence four times that.
const (
	DefaultWHEPConnectingPerToken   = 8
	DefaultWHEPConnectingPerAddress = 32
)

// errTooManyConnecting refuses a WHEP offer beyond a limit (429).
var errTooManyConnecting = errors.New("too many WebRTC connections")

// connectingRefusal is errTooManyConnecting with its reason and when to try again:
// by then the offers still connecting have connected or timed out.
type connectingRefusal struct{ error }

func (e connectingRefusal) Unwrap() error           { return e.error }
func (connectingRefusal) RetryAfter() time.Duration { return 2 * time.Second }

// whepLimits counts WHEP offers still connecting per token and per client address,
// and live WHEP connections per viewer token.
type whepLimits struct {
	tokenAddrLimit
	viewer *limit.Counter
}

// newWHEPLimits applies the defaults to 0 and no limit to negative values for the
// connecting offers; viewer connections are unlimited unless positive.
func newWHEPLimits(perToken, perAddress, viewer int) *whepLimits {
	return &whepLimits{
		tokenAddrLimit: newTokenAddrLimit(perToken, perAddress, DefaultWHEPConnectingPerToken, DefaultWHEPConnectingPerAddress),
		viewer:         limit.NewCounter(viewer),
	}
}

// acquire takes the places a WHEP offer of token (role, from the request's address)
// needs. settled gives back the "still connecting" ones, closed the live-connection
// one; both are idempotent, and both must be called when the offer fails.
func (l *whepLimits) acquire(r *http.Request, token string, role auth.Role) (settled, closed func(), err error) {
	settled, err = l.tokenAddrLimit.acquire(r, token, func(byToken bool, max int) error {
		if byToken {
			return connectingRefusal{fmt.Errorf("%w: this token already has %d connections still connecting; wait for them to connect or time out",
				errTooManyConnecting, max)}
		}
		return connectingRefusal{fmt.Errorf("%w: this address already has %d connections still connecting",
			errTooManyConnecting, max)}
	})
	if err != nil {
		return nil, nil, err
	}
	closed = func() {}
	if role == auth.RoleViewer {
		releaseViewer, ok := l.viewer.Acquire(token)
		if !ok {
			settled()
			return nil, nil, connectingRefusal{fmt.Errorf("%w: this viewer link already plays on %d screens; ask for another link",
				errTooManyConnecting, l.viewer.Max())}
		}
		closed = releaseViewer
	}
	return settled, closed, nil
}
