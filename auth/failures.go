package auth

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the failed-authentication limiter: a client address may present
// DefaultFailureBurst bad tokens at once, then one more every DefaultFailureEvery.
// A person mistyping a token never meets it; a guesser gets 60 tries an hour
// instead of thousands a minute.
const (
	DefaultFailureBurst = 10
	DefaultFailureEvery = time.Minute
	// maxFailureKeys bounds the addresses remembered at once, so that failures from
	// many addresses cannot grow the map without bound.
	maxFailureKeys = 10000
)

// FailureLimiter counts failed authentications (a wrong admin token, a token not
// signed by us) per client address, and tells when an address has failed too often:
// a token bucket per address, refilled with time. Successful authentications cost
// nothing and are never refused while the address still has tries left.
//
// One FailureLimiter is shared by every edge that checks tokens (HTTP, RTSP), so
// guesses count the same wherever they arrive. Safe for concurrent use.
type FailureLimiter struct {
	every time.Duration
	burst int
	now   func() time.Time // time.Now; replaced in tests

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// NewFailureLimiter allows each address burst failures at once, then one per
// every. burst <= 0 disables the limit (Allow always says yes).
func NewFailureLimiter(burst int, every time.Duration) *FailureLimiter {
	if every <= 0 {
		every = DefaultFailureEvery
	}
	return &FailureLimiter{every: every, burst: burst, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// Allow reports whether addr may try to authenticate now. When it may not, retry
// is how long until its next try.
func (l *FailureLimiter) Allow(addr string) (retry time.Duration, ok bool) {
	if l == nil || l.burst <= 0 {
		return 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[addr]
	if !found || b.TokensAt(now) >= 1 {
		return 0, true
	}
	// What a reservation would wait for one token, without taking it.
	r := b.ReserveN(now, 1)
	retry = r.DelayFrom(now)
	r.CancelAt(now)
	if retry < time.Second {
		retry = time.Second
	}
	return retry, false
}

// Failed records a failed authentication from addr.
func (l *FailureLimiter) Failed(addr string) {
	if l == nil || l.burst <= 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[addr]
	if !found {
		if len(l.buckets) >= maxFailureKeys {
			l.pruneLocked(now)
		}
		b = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.buckets[addr] = b
	}
	b.AllowN(now, 1)
}

// pruneLocked forgets the addresses whose bucket has refilled (they are as good as
// new), and when that is not enough, any addresses, to stay within maxFailureKeys.
func (l *FailureLimiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxFailureKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// Addresses is how many addresses have failures remembered now.
func (l *FailureLimiter) Addresses() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// TooManyFailuresError refuses an address that failed to authenticate too often.
// It matches ErrTooManyFailures.
type TooManyFailuresError struct {
	Retry time.Duration // when the address may try again
}

func (e *TooManyFailuresError) Error() string {
	return fmt.Sprintf("%v: try again in %v", ErrTooManyFailures, e.Retry.Round(time.Second))
}

// Is makes errors.Is(err, ErrTooManyFailures) hold.
func (e *TooManyFailuresError) Is(target error) bool { return target == ErrTooManyFailures }

// RetryAfter is when to try again, for a Retry-After header.
func (e *TooManyFailuresError) RetryAfter() time.Duration { return e.Retry }

// Authenticator checks the tokens a client presents: the admin token or a token
// signed by Issuer (nil: the admin token only), counting failures per client
// address in Failures (nil: no limit). Every edge that takes tokens (HTTP, RTSP) authenticates through one, so
// guesses are limited the same way on each.
type Authenticator struct {
	Issuer     *Issuer
	AdminToken string
	Failures   *FailureLimiter
}

// Authenticate checks tok, presented from the client address addr (a host, see
// limit.ClientAddr). It returns admin true for the admin token, else the claims of
// a valid token, or of a device access code (codes.go) when the Issuer has codes.
//
// A token signed with our secret cannot be guessed (HMAC-SHA256), so it is
// accepted even from an address that failed too often: a classroom behind the
// same NAT as a guesser keeps working. Anything else from such an address is
// refused with a *TooManyFailuresError before the admin token is compared or a
// code looked up, so a guesser learns nothing more: device codes are short enough
// to be worth guessing, so they are looked up only for an address with tries left.
// Wrong admin tokens, tokens we did not sign and unknown codes count as failures;
// an expired token or code of ours (an old invitation) does not.
func (a *Authenticator) Authenticate(addr, tok string) (claims *Claims, admin bool, err error) {
	verr := fmt.Errorf("%w: no participant tokens here, only the admin token", ErrInvalidToken)
	if a.Issuer != nil { // nil: only the admin token is taken
		var c *Claims
		if c, verr = a.Issuer.Verify(tok); verr == nil {
			return c, false, nil
		}
	}
	if retry, ok := a.Failures.Allow(addr); !ok {
		return nil, false, &TooManyFailuresError{Retry: retry}
	}
	if AdminTokenMatches(tok, a.AdminToken) {
		return nil, true, nil
	}
	if _, isCode := CanonicalCode(tok); isCode && a.Issuer.HasCodes() {
		var c *Claims
		if c, verr = a.Issuer.verifyCode(tok); verr == nil {
			return c, false, nil
		}
	}
	if !errors.Is(verr, ErrExpiredToken) {
		a.Failures.Failed(addr)
	}
	return nil, false, verr
}
