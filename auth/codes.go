package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Device access codes: short credentials for RTSP devices.
//
// A participant token is a ~300-character JWT. ffmpeg cuts URL userinfo at 127 bytes,
// and hardware decoders and cameras often take far shorter passwords, so an admin or a
// trainer mints a short code for a device instead: 16 characters from CodeAlphabet
// (shown in groups of four, "k7m2-x9qa-…"), bound to one session, role and name, with
// an expiry, revocable. It is accepted wherever a token is (Authenticator.Authenticate:
// the RTSP password, ?token=, Bearer).
//
// The server keeps only the SHA-256 of a code, never the code. A fast hash is enough:
// a code is 16 random characters of a 31-symbol alphabet, 79 bits of entropy, so
// nobody can search the hash space the way one searches human passwords, and the
// slow hashes made for those (bcrypt, argon2) would only let a guesser make the
// server burn CPU. Lookup is by the hash (a map), so comparing never walks the code
// character by character. Guessing online is what remains, and Authenticate counts
// every wrong code in the failed-authentication limiter, per client address.

const (
	// CodeAlphabet is what codes are made of: lower-case letters and digits without
	// the look-alikes 0/o, 1/l/i, so a code read aloud or copied from a screen onto a
	// decoder's keypad comes out right.
	CodeAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"
	// CodeLength is the number of random characters in a code (79 bits).
	CodeLength = 16
	// codeGroup is the size of the groups a code is shown in; dashes between them are
	// optional when it is typed.
	codeGroup = 4
)

// CodeRoles are the roles a device code may carry: a hall decoder (site or viewer)
// or a studio encoder (trainer). Learners watch replays in a browser, and embeds are
// per recording, so neither gets a code.
func CodeRoles() []Role { return []Role{RoleSite, RoleViewer, RoleTrainer} }

// CodeGrant is what a stored code admits to, as its resolver finds it.
type CodeGrant struct {
	ID        string // the code's id (not the code): names it in the API and in Claims.ID
	Session   string
	Role      Role
	Name      string
	Display   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// CodeResolver finds the grant of a code by the SHA-256 of its canonical form
// (HashCode). found is false for a code that was never minted or was revoked; an
// expired grant may be returned (Authenticate then answers ErrExpiredToken).
type CodeResolver interface {
	ResolveCode(hash [sha256.Size]byte) (grant CodeGrant, found bool)
}

// WithCodes returns a copy of i whose Authenticators also accept the device codes
// codes resolves. The copy is what every edge (HTTP, RTSP) should be given, so that
// a code works on each of them.
func (i *Issuer) WithCodes(codes CodeResolver) *Issuer {
	c := *i
	c.codes = codes
	return &c
}

// HasCodes reports whether i was given a CodeResolver (WithCodes).
func (i *Issuer) HasCodes() bool { return i != nil && i.codes != nil }

// GenerateCode returns a fresh code, formatted for people ("k7m2-x9qa-4hdn-c3vt"),
// and the hash to store (HashCode of it).
func GenerateCode() (code string, hash [sha256.Size]byte, err error) {
	// Rejection sampling keeps every symbol equally likely: bytes at or above the
	// largest multiple of len(CodeAlphabet) are drawn again.
	const n = len(CodeAlphabet)
	const limit = 256 - 256%n
	raw := make([]byte, 0, CodeLength)
	buf := make([]byte, 2*CodeLength)
	for len(raw) < CodeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", hash, fmt.Errorf("auth: read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(raw) < CodeLength {
				raw = append(raw, CodeAlphabet[int(b)%n])
			}
		}
	}
	var sb strings.Builder
	for i, c := range raw {
		if i > 0 && i%codeGroup == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(c)
	}
	return sb.String(), sha256.Sum256(raw), nil
}

// CanonicalCode returns s as a code in canonical form (lower case, no dashes or
// spaces), and whether s is shaped like a code at all: CodeLength characters of
// CodeAlphabet once dashes and spaces are removed. Upper case is taken as lower,
// since a person may type the code either way.
func CanonicalCode(s string) (string, bool) {
	if len(s) > 2*CodeLength { // dashes and spaces at most between every character
		return "", false
	}
	b := make([]byte, 0, CodeLength)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if strings.IndexByte(CodeAlphabet, c) < 0 || len(b) == CodeLength {
			return "", false
		}
		b = append(b, c)
	}
	if len(b) != CodeLength {
		return "", false
	}
	return string(b), true
}

// HashCode returns the SHA-256 of a code in canonical form (see CanonicalCode), and
// false if s is not shaped like a code.
func HashCode(s string) ([sha256.Size]byte, bool) {
	c, ok := CanonicalCode(s)
	if !ok {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256([]byte(c)), true
}

// verifyCode looks tok up as a device code. It returns ErrInvalidToken for a code
// never minted or revoked, ErrExpiredToken for one past its expiry (Leeway
// tolerated), else the claims the code stands for, as a token's would read.
func (i *Issuer) verifyCode(tok string) (*Claims, error) {
	hash, ok := HashCode(tok)
	if !ok {
		return nil, fmt.Errorf("%w: not a device code", ErrInvalidToken)
	}
	g, found := i.codes.ResolveCode(hash)
	if !found {
		return nil, fmt.Errorf("%w: no such device code (mistyped, or revoked)", ErrInvalidToken)
	}
	if !i.now().Before(g.ExpiresAt.Add(Leeway)) {
		return nil, fmt.Errorf("%w: device code expired at %s", ErrExpiredToken, g.ExpiresAt.UTC().Format(time.RFC3339))
	}
	c := &Claims{Session: g.Session, Role: g.Role, Name: g.Name, Display: g.Display}
	c.Issuer, c.ID = issuerName, g.ID
	c.ExpiresAt = jwt.NewNumericDate(g.ExpiresAt)
	c.IssuedAt = jwt.NewNumericDate(g.IssuedAt)
	switch {
	case !ValidName(c.Session) || !ValidName(c.Name):
		return nil, fmt.Errorf("%w: device code %s names session %q, participant %q", ErrInvalidToken, g.ID, c.Session, c.Name)
	case !isCodeRole(c.Role):
		return nil, fmt.Errorf("%w: device code %s has role %q", ErrInvalidToken, g.ID, c.Role)
	}
	return c, nil
}

// isCodeRole reports whether r is one of CodeRoles.
func isCodeRole(r Role) bool {
	for _, cr := range CodeRoles() {
		if r == cr {
			return true
		}
	}
	return false
}
