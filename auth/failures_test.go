package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testAdminToken = "the-admin-token-0123456789"

// fakeClock is a settable time for the limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestAuthenticator(t *testing.T, burst int, every time.Duration) (*Authenticator, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewFailureLimiter(burst, every)
	l.now = clock.now
	return &Authenticator{Issuer: newTestIssuer(t, testSecret), AdminToken: testAdminToken, Failures: l}, clock
}

// TestAuthenticatorLimitsGuesses: after burst wrong tokens an address is refused
// (even with the right admin token) until the bucket refills; other addresses and
// tokens we signed are not affected; expired tokens of ours do not count.
func TestAuthenticatorLimitsGuesses(t *testing.T) {
	const burst = 5
	a, clock := newTestAuthenticator(t, burst, 10*time.Second)
	site, _, err := a.Issuer.Mint(MintRequest{Session: "s1", Role: RoleSite, Name: "hue", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const guesser, neighbour = "192.0.2.7", "192.0.2.8"

	for i := range burst {
		if _, _, err := a.Authenticate(guesser, fmt.Sprintf("guess-%d", i)); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("guess %d: %v, want ErrInvalidToken", i, err)
		}
	}
	_, admin, err := a.Authenticate(guesser, testAdminToken)
	var tooMany *TooManyFailuresError
	if admin || !errors.Is(err, ErrTooManyFailures) || !errors.As(err, &tooMany) || tooMany.RetryAfter() < time.Second {
		t.Fatalf("right admin token after %d wrong ones: admin %v, %v; want refused with a retry time", burst, admin, err)
	}
	if _, _, err := a.Authenticate(guesser, "guess-again"); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("another guess: %v, want ErrTooManyFailures", err)
	}
	// A token we signed cannot be guessed: the classroom behind the same address works.
	if c, _, err := a.Authenticate(guesser, site); err != nil || c.Name != "hue" {
		t.Fatalf("a valid site token from the refused address: %v, %v", c, err)
	}
	// Another address is not affected.
	if _, admin, err := a.Authenticate(neighbour, testAdminToken); err != nil || !admin {
		t.Fatalf("admin token from another address: %v, %v", admin, err)
	}
	// The bucket refills: one more try after the interval.
	clock.t = clock.t.Add(10 * time.Second)
	if _, admin, err := a.Authenticate(guesser, testAdminToken); err != nil || !admin {
		t.Fatalf("admin token after the refill: %v, %v", admin, err)
	}

	// Expired tokens of ours are old invitations, not guesses: they never lock anyone out.
	c := validClaims()
	c.ExpiresAt = jwt.NewNumericDate(clock.t.Add(-time.Hour))
	c.IssuedAt = jwt.NewNumericDate(clock.t.Add(-2 * time.Hour))
	a.Issuer.now = clock.now
	expired := sign(t, jwt.SigningMethodHS256, testSecret, c)
	const old = "192.0.2.9"
	for range 3 * burst {
		if _, _, err := a.Authenticate(old, expired); !errors.Is(err, ErrExpiredToken) {
			t.Fatalf("expired token: %v, want ErrExpiredToken", err)
		}
	}
	if _, admin, err := a.Authenticate(old, testAdminToken); err != nil || !admin {
		t.Fatalf("admin token after expired ones: %v, %v", admin, err)
	}
}

// TestAuthenticatorAdminOnly: without an Issuer only the admin token is taken.
func TestAuthenticatorAdminOnly(t *testing.T) {
	a := &Authenticator{AdminToken: testAdminToken}
	if _, admin, err := a.Authenticate("192.0.2.1", testAdminToken); err != nil || !admin {
		t.Fatalf("admin token: %v, %v", admin, err)
	}
	if _, _, err := a.Authenticate("192.0.2.1", "eyJ.x.y"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("another token: %v", err)
	}
}

// TestFailureLimiterBounded: failures from very many addresses keep the map within
// its bound.
func TestFailureLimiterBounded(t *testing.T) {
	l := NewFailureLimiter(3, time.Minute)
	for i := range maxFailureKeys + 500 {
		l.Failed(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	if n := l.Addresses(); n > maxFailureKeys {
		t.Fatalf("%d addresses remembered, bound %d", n, maxFailureKeys)
	}
	if _, ok := NewFailureLimiter(0, 0).Allow("x"); !ok {
		t.Fatal("a disabled limiter refused")
	}
	var nilLimiter *FailureLimiter
	nilLimiter.Failed("x")
	if _, ok := nilLimiter.Allow("x"); !ok {
		t.Fatal("a nil limiter refused")
	}
}

// FuzzVerify feeds arbitrary strings to the token parser: it never panics, and it
// accepts only tokens signed with the issuer's secret, whose claims are then valid.
func FuzzVerify(f *testing.F) {
	iss, err := NewIssuer(testSecret)
	if err != nil {
		f.Fatal(err)
	}
	good, _, err := iss.Mint(MintRequest{Session: "s1", Role: RoleSite, Name: "ha-noi", Display: "Hà Nội", TTL: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	embed, _, err := iss.Mint(MintRequest{Session: "s1", Role: RoleEmbed, Name: "embed", Recording: "s1-20260101t000000z-trainer", TTL: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	other, _ := NewIssuer([]byte("another-secret-another-secret-another-secret"))
	foreign, _, _ := other.Mint(MintRequest{Session: "s1", Role: RoleTrainer, Name: "t", TTL: time.Hour})
	for _, seed := range []string{good, embed, foreign, "", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
		strings.Replace(good, ".", "..", 1), good + "x", testAdminToken, "Bearer " + good} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := iss.Verify(tok)
		if err != nil {
			if c != nil {
				t.Fatalf("claims %+v with error %v", c, err)
			}
			return
		}
		// Accepted only when its signature is the HMAC of its first two parts with our secret.
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q with %d parts accepted", tok, len(parts))
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatalf("token %q accepted without our signature", tok)
		}
		if _, err := other.Verify(tok); err == nil {
			t.Fatalf("token %q verified under two secrets", tok)
		}
		if !ValidName(c.Session) || !c.Role.Valid() || !ValidName(c.Name) || (c.Role == RoleEmbed) != (c.Recording != "") {
			t.Fatalf("accepted claims are not valid: %+v", c)
		}
	})
}

// TestEmbedTokens: an embed token names one recording, lives up to MaxEmbedTTL, and is
// admitted only where RoleEmbed is named, never as "any role of the session".
func TestEmbedTokens(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	const rec = "s1-20260101t080000z-trainer"
	tok, exp, err := iss.Mint(MintRequest{Session: "s1", Role: RoleEmbed, Name: "embed", Recording: rec, TTL: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(exp) < 364*24*time.Hour {
		t.Errorf("embed token expires at %v", exp)
	}
	c, err := iss.Verify(tok)
	if err != nil || c.Role != RoleEmbed || c.Recording != rec || c.ID == "" {
		t.Fatalf("Verify(embed) = %+v, %v", c, err)
	}
	if err := c.Allows("s1"); !errors.Is(err, ErrWrongRole) {
		t.Errorf("embed token allowed as any role of its session: %v", err)
	}
	if err := c.Allows("s1", RoleEmbed); err != nil {
		t.Errorf("embed token where embed is named: %v", err)
	}
	for name, req := range map[string]MintRequest{
		"no recording":       {Session: "s1", Role: RoleEmbed, Name: "embed", TTL: time.Hour},
		"bad recording":      {Session: "s1", Role: RoleEmbed, Name: "embed", Recording: "../x", TTL: time.Hour},
		"too long":           {Session: "s1", Role: RoleEmbed, Name: "embed", Recording: rec, TTL: MaxEmbedTTL + time.Hour},
		"site with a record": {Session: "s1", Role: RoleSite, Name: "hue", Recording: rec, TTL: time.Hour},
	} {
		if _, _, err := iss.Mint(req); !errors.Is(err, ErrInvalidClaims) {
			t.Errorf("%s: Mint = %v, want ErrInvalidClaims", name, err)
		}
	}
	// Claims that Mint refuses are refused by Verify too, when someone signs them.
	bad := validClaims()
	bad.Recording = rec
	if _, err := iss.Verify(sign(t, jwt.SigningMethodHS256, testSecret, bad)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a site token naming a recording: %v", err)
	}
	bad = validClaims()
	bad.Role = RoleEmbed
	if _, err := iss.Verify(sign(t, jwt.SigningMethodHS256, testSecret, bad)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("an embed token without a recording: %v", err)
	}
}
