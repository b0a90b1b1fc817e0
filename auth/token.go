// Package auth mints and verifies the signed tokens that admit participants to a session.
//
// A token is an HS256 JWT (RFC 7519) whose claims name one session, one role and one
// participant; it is minted by the server (on behalf of an admin) and presented on every
// request as "Authorization: Bearer <token>", or as a ?token= query parameter where the
// client cannot set headers (EventSource, RTSP URLs). The package imports no other project
// package: both the web layer and the RTSP edge use it.
//
// Everything here is safe for concurrent use; an Issuer is immutable after NewIssuer.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Limits on what Mint accepts and Verify tolerates.
const (
	// MinSecretLen is the shortest HMAC secret NewIssuer accepts: 32 bytes, the output size
	// of SHA-256 (RFC 7518 §3.2 requires a key at least as long as the hash).
	MinSecretLen = 32
	// MinTTL and MaxTTL bound a token's lifetime. 90 days covers a training course's
	// classroom tokens; anything longer should be re-minted.
	MinTTL = time.Minute
	MaxTTL = 90 * 24 * time.Hour
	// MaxEmbedTTL bounds an embed token: a replay embedded in a training portal stays
	// there for years; it is revoked by deleting it, not by waiting.
	MaxEmbedTTL = 5 * 365 * 24 * time.Hour
	// Leeway is the clock skew tolerated on exp (and iat, nbf) when verifying.
	Leeway = 5 * time.Second
	// MaxDisplayLen is the longest display name, in characters (runes).
	MaxDisplayLen = 100
	// issuerName is the "iss" claim of every token, checked by Verify.
	issuerName = "lectern"
)

// Role says what a participant may do in a session.
type Role string

// The roles. What each may do is decided by the callers (through Claims.Allows).
const (
	RoleTrainer Role = "trainer" // publishes the lecture, grants the floor
	RoleSite    Role = "site"    // a classroom: watches, raises a hand, publishes when granted
	RoleViewer  Role = "viewer"  // watches only
	RoleLearner Role = "learner" // an individual learner: watches, raises a hand
	// RoleEmbed reads one recording's replay and nothing else: the credential of a player
	// embedded in another site. Its token names the recording (Claims.Recording), and the
	// server also checks that it was not revoked.
	RoleEmbed Role = "embed"
	// RoleNode is a cluster node's credential towards another node (the media relay):
	// minted by MintNode, checked by VerifyNode, never valid as a participant's token
	// (Verify refuses it, and it names no session). Not a Valid role: Mint refuses it.
	RoleNode Role = "node"
)

// NodeTokenTTL is the lifetime of a node credential: a node mints one per request to
// another node, so a leaked one is of use for minutes only.
const NodeTokenTTL = 5 * time.Minute

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleTrainer, RoleSite, RoleViewer, RoleLearner, RoleEmbed:
		return true
	}
	return false
}

// Claims are the contents of a token. Verify only returns Claims whose Session and Name
// pass ValidName and whose Role is Valid.
type Claims struct {
	// Session is the id of the one session the token admits to ("" is never valid).
	Session string `json:"sid"`
	// Role is what the holder may do in that session.
	Role Role `json:"role"`
	// Name identifies the participant within the session: a site name ("ha-noi"), a trainer
	// id or a viewer id. It is a ValidName, so it can be used in track names and URLs.
	Name string `json:"name"`
	// Display is the human name shown in the UI; it may be Vietnamese with diacritics.
	Display string `json:"display,omitempty"`
	// Recording is the one recording an embed token reads (RoleEmbed only, required there).
	Recording string `json:"rec,omitempty"`
	// RegisteredClaims carries exp, iat, iss ("lectern") and a random jti.
	jwt.RegisteredClaims
}

// Allows returns nil if the token admits its holder to session with one of roles. With no
// roles, any participant's role is allowed: every role but RoleEmbed, which is allowed only
// where it is named. It returns an error matching ErrWrongSession or ErrWrongRole.
func (c *Claims) Allows(session string, roles ...Role) error {
	if c.Session == "" || c.Session != session {
		return fmt.Errorf("%w: token is for session %q, not %q", ErrWrongSession, c.Session, session)
	}
	if len(roles) == 0 && c.Role == RoleEmbed {
		return fmt.Errorf("%w: an embed token only plays its recording", ErrWrongRole)
	}
	if len(roles) > 0 && !slices.Contains(roles, c.Role) {
		return fmt.Errorf("%w: role %q, want one of %v", ErrWrongRole, c.Role, roles)
	}
	return nil
}

// MintRequest describes the token to mint.
type MintRequest struct {
	Session string        // session id, a ValidName
	Role    Role          // a Valid role
	Name    string        // participant id, a ValidName
	Display string        // optional human name: UTF-8, no control characters, ≤ MaxDisplayLen
	TTL     time.Duration // lifetime, MinTTL..MaxTTL (MaxEmbedTTL for RoleEmbed)
	// Recording is the recording an embed token reads: required for RoleEmbed, a
	// ValidRecording; empty for every other role.
	Recording string
}

// validate returns every problem with r, each matching ErrInvalidClaims.
func (r MintRequest) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidClaims}, args...)...))
	}
	if !ValidName(r.Session) {
		bad("session id %q is not a valid name (%s)", r.Session, nameRule)
	}
	if !r.Role.Valid() {
		bad("unknown role %q", r.Role)
	}
	if !ValidName(r.Name) {
		bad("participant name %q is not a valid name (%s)", r.Name, nameRule)
	}
	if err := checkDisplay(r.Display); err != nil {
		bad("display name: %v", err)
	}
	maxTTL := MaxTTL
	if r.Role == RoleEmbed {
		maxTTL = MaxEmbedTTL
	}
	if r.TTL < MinTTL || r.TTL > maxTTL {
		bad("lifetime %v is outside %v..%v", r.TTL, MinTTL, maxTTL)
	}
	switch {
	case r.Role == RoleEmbed && !ValidRecording(r.Recording):
		bad("an embed token needs a valid recording id, got %q", r.Recording)
	case r.Role != RoleEmbed && r.Recording != "":
		bad("only an embed token names a recording")
	}
	return errors.Join(errs...)
}

// checkDisplay accepts any printable UTF-8 text up to MaxDisplayLen characters. Control
// characters, bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C:
// "\u202egnp.exe" shows as "exe.png") and line or paragraph separators are refused: a
// display name is shown to everyone else, and must show what it says.
func checkDisplay(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > MaxDisplayLen {
		return fmt.Errorf("%d characters, at most %d", n, MaxDisplayLen)
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return fmt.Errorf("contains control characters (%U)", r)
		case unicode.Is(unicode.Bidi_Control, r):
			return fmt.Errorf("contains a bidirectional control character (%U), which reorders the text around it", r)
		case unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Errorf("contains a line or paragraph separator (%U)", r)
		}
	}
	return nil
}

// Issuer mints and verifies tokens with one HMAC secret. Create it with NewIssuer.
type Issuer struct {
	secret []byte
	now    func() time.Time // time.Now; replaced in tests
	// codes resolves device access codes (codes.go); nil: codes are not taken.
	codes CodeResolver
}

// NewIssuer returns an Issuer signing with a copy of secret, which must be at least
// MinSecretLen bytes long.
func NewIssuer(secret []byte) (*Issuer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: token secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	return &Issuer{secret: slices.Clone(secret), now: time.Now}, nil
}

// Mint signs a token for req. It returns the token and its expiry (truncated to the second,
// as stored in the token), or an error matching ErrInvalidClaims listing every problem.
func (i *Issuer) Mint(req MintRequest) (token string, expires time.Time, err error) {
	if err := req.validate(); err != nil {
		return "", time.Time{}, err
	}
	jti, err := randomString(16)
	if err != nil {
		return "", time.Time{}, err
	}
	now := i.now()
	expires = now.Add(req.TTL).Truncate(time.Second)
	claims := Claims{
		Session:   req.Session,
		Role:      req.Role,
		Name:      req.Name,
		Display:   req.Display,
		Recording: req.Recording,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuerName,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
			ID:        jti,
		},
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(i.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign token: %w", err)
	}
	return token, expires, nil
}

// Verify checks token's signature (HS256 only: "none", RS256 and every other algorithm are
// rejected), issuer and expiry (required; Leeway tolerated), and that its claims name a valid
// session, role and participant. The error matches ErrExpiredToken or ErrInvalidToken and
// wraps the jwt error that says why.
//
// Verify does not check which session the token is used for: call Claims.Allows.
func (i *Issuer) Verify(token string) (*Claims, error) {
	c, err := i.parse(token)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Role == RoleNode:
		return nil, fmt.Errorf("%w: a node credential is not a participant's token", ErrInvalidToken)
	case !ValidName(c.Session):
		return nil, fmt.Errorf("%w: session id %q is not a valid name", ErrInvalidToken, c.Session)
	case !c.Role.Valid():
		return nil, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, c.Role)
	case !ValidName(c.Name):
		return nil, fmt.Errorf("%w: participant name %q is not a valid name", ErrInvalidToken, c.Name)
	case c.Role == RoleEmbed && !ValidRecording(c.Recording):
		return nil, fmt.Errorf("%w: embed token for recording %q", ErrInvalidToken, c.Recording)
	case c.Role != RoleEmbed && c.Recording != "":
		return nil, fmt.Errorf("%w: a %s token names a recording", ErrInvalidToken, c.Role)
	}
	return c, nil
}

// parse checks token's signature, algorithm, issuer and expiry (see Verify).
func (i *Issuer) parse(token string) (*Claims, error) {
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuerName),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(i.now),
	)
	var c Claims
	_, err := parser.ParseWithClaims(token, &c, i.key)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		// Only reached once the signature is good: jwt checks claims after it.
		return nil, fmt.Errorf("%w: %w", ErrExpiredToken, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return &c, nil
}

// MintNode signs a node credential for nodeID (a ValidName), valid NodeTokenTTL: what
// one cluster node presents to another (they share the token secret).
func (i *Issuer) MintNode(nodeID string) (string, error) {
	if !ValidName(nodeID) {
		return "", fmt.Errorf("%w: node id %q is not a valid name (%s)", ErrInvalidClaims, nodeID, nameRule)
	}
	jti, err := randomString(16)
	if err != nil {
		return "", err
	}
	now := i.now()
	claims := Claims{
		Role: RoleNode,
		Name: nodeID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuerName,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(NodeTokenTTL)),
			ID:        jti,
		},
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(i.secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign node token: %w", err)
	}
	return token, nil
}

// VerifyNode checks a node credential as Verify checks a participant's token, and
// that it is one: role node, a valid node id, no session. It returns the node id. The
// error matches ErrExpiredToken, ErrInvalidToken or (a participant's token) ErrWrongRole.
func (i *Issuer) VerifyNode(token string) (nodeID string, err error) {
	c, err := i.parse(token)
	if err != nil {
		return "", err
	}
	switch {
	case c.Role != RoleNode:
		return "", fmt.Errorf("%w: a %q token is not a node credential", ErrWrongRole, c.Role)
	case c.Session != "" || c.Recording != "" || c.Display != "":
		return "", fmt.Errorf("%w: a node credential names no session", ErrInvalidToken)
	case !ValidName(c.Name):
		return "", fmt.Errorf("%w: node id %q is not a valid name", ErrInvalidToken, c.Name)
	}
	return c.Name, nil
}

// key is the jwt.Keyfunc. The method was already checked by WithValidMethods; checking the
// type again keeps an HMAC secret from ever being handed to another algorithm.
func (i *Issuer) key(t *jwt.Token) (any, error) {
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok {
		return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
	}
	return i.secret, nil
}

// BearerToken returns the token presented by r: from an "Authorization: Bearer <token>"
// header (RFC 6750 §2.1; the scheme is case-insensitive), or else from the "token" query
// parameter (RFC 6750 §2.3), which EventSource and RTSP clients need because they cannot set
// headers. The header wins when both are present. Callers should keep the query out of
// access logs. The error matches ErrMissingToken.
func BearerToken(r *http.Request) (string, error) {
	headerErr := errors.New("no Authorization header")
	if h := r.Header.Get("Authorization"); h != "" {
		tok, err := parseBearer(h)
		if err == nil {
			return tok, nil
		}
		headerErr = err
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("%w: %w and no token query parameter", ErrMissingToken, headerErr)
}

// parseBearer extracts the token from an Authorization header value.
func parseBearer(h string) (string, error) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("scheme %q in the Authorization header is not Bearer", scheme)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", errors.New("no single token after Bearer in the Authorization header")
	}
	return tok, nil
}

// AdminTokenMatches reports whether got equals want in constant time (neither the content
// nor the length of want leaks through timing). An empty want never matches.
func AdminTokenMatches(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// nameRule describes ValidName for error messages.
const nameRule = "1-63 of a-z 0-9 _ -, starting with a letter or digit"

// ValidName reports whether s may be a session id or participant name: 1 to 63 characters
// of lower-case ASCII letters, digits, '_' and '-', starting with a letter or digit
// (^[a-z0-9][a-z0-9_-]{0,62}$).
//
// The rule is strict because these ids travel everywhere unescaped: in URL paths
// (/whip/{session}), RTSP paths (rtsp://host/{session}), track names (site-{name}/video),
// object-store keys (recordings/{session}/…) and file names on case-insensitive file
// systems. Lower case only, so that "Ha-Noi" and "ha-noi" cannot be two participants; no
// leading '-' or '_', so an id is never taken for a command-line flag or a hidden file;
// 63 characters, the length of a DNS label.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidRecording reports whether s may be a recording id in an embed token: 1 to 128
// characters of ASCII letters, digits, '_', '.' and '-', starting with a letter or digit
// (the recorder's ids are "<session>-<time>-<publication>").
func ValidRecording(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// GenerateSecret returns n random bytes from crypto/rand for use as a token secret; n must be
// at least MinSecretLen.
func GenerateSecret(n int) ([]byte, error) {
	if n < MinSecretLen {
		return nil, fmt.Errorf("auth: secret of %d bytes requested, need at least %d", n, MinSecretLen)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("auth: generate secret: %w", err)
	}
	return b, nil
}

// GenerateAdminToken returns a random admin token: 32 bytes from crypto/rand, URL-safe
// base64 without padding (43 characters), so it can be pasted in headers, URLs and shells.
func GenerateAdminToken() (string, error) {
	return randomString(32)
}

// randomString returns n random bytes as unpadded URL-safe base64.
func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
