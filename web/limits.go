package web

import (
	"net/http"

	"lectern/internal/limit"
)

// tokenAddrLimit bounds what clients hold at once (open event streams, WHEP offers
// still connecting) per token and per client address: a token is often shared by a
// hall's screens, and a province's classrooms often share one NAT address.
type tokenAddrLimit struct {
	perToken, perAddress *limit.Counter
}

// newTokenAddrLimit applies the defaults to 0 and no limit to negative values.
func newTokenAddrLimit(perToken, perAddress, defaultPerToken, defaultPerAddress int) tokenAddrLimit {
	if perToken == 0 {
		perToken = defaultPerToken
	}
	if perAddress == 0 {
		perAddress = defaultPerAddress
	}
	return tokenAddrLimit{perToken: limit.NewCounter(perToken), perAddress: limit.NewCounter(perAddress)}
}

// acquire takes a place for token and one for the request's address; release gives
// both back. A limit reached takes nothing and is the error refused makes for it
// (byToken says which limit, max is its value).
func (l tokenAddrLimit) acquire(r *http.Request, token string, refused func(byToken bool, max int) error) (release func(), err error) {
	releaseToken, ok := l.perToken.Acquire(token)
	if !ok {
		return nil, refused(true, l.perToken.Max())
	}
	releaseAddr, ok := l.perAddress.Acquire(limit.ClientAddr(r))
	if !ok {
		releaseToken()
		return nil, refused(false, l.perAddress.Max())
	}
	return func() { releaseAddr(); releaseToken() }, nil
}
