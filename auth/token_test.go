package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newTestIssuer(t *testing.T, secret []byte) *Issuer {
	t.Helper()
	iss, err := NewIssuer(secret)
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	return iss
}

// sign signs claims with any method and key, bypassing Mint's checks.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// validClaims returns claims that Verify accepts when signed with testSecret.
func validClaims() Claims {
	now := time.Now()
	return Claims{
		Session: "lecture-1",
		Role:    RoleSite,
		Name:    "ha-noi",
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "lectern",
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			ID:        "test",
		},
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	tests := []struct {
		name string
		req  MintRequest
	}{
		{"trainer", MintRequest{Session: "s1", Role: RoleTrainer, Name: "trainer-1", TTL: time.Hour}},
		{"site with Vietnamese display", MintRequest{Session: "khoa-hoc_2025", Role: RoleSite, Name: "ha-noi", Display: "Hà Nội — Phòng 3", TTL: 30 * 24 * time.Hour}},
		{"viewer minimal ttl", MintRequest{Session: "s1", Role: RoleViewer, Name: "v", TTL: MinTTL}},
		{"learner maximal ttl", MintRequest{Session: "0", Role: RoleLearner, Name: "hoc-vien-7", TTL: MaxTTL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			tok, exp, err := iss.Mint(tt.req)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if want := before.Add(tt.req.TTL); exp.Before(want.Add(-time.Second)) || exp.After(want.Add(time.Second)) {
				t.Errorf("expires = %v, want about %v", exp, want)
			}
			c, err := iss.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Session != tt.req.Session || c.Role != tt.req.Role || c.Name != tt.req.Name || c.Display != tt.req.Display {
				t.Errorf("claims = %+v, want %+v", c, tt.req)
			}
			if !c.ExpiresAt.Time.Equal(exp) {
				t.Errorf("exp claim = %v, Mint returned %v", c.ExpiresAt.Time, exp)
			}
			if c.Issuer != "lectern" || c.ID == "" || c.IssuedAt == nil {
				t.Errorf("registered claims = %+v, want iss lectern, a jti and iat", c.RegisteredClaims)
			}
			if err := c.Allows(tt.req.Session, tt.req.Role); err != nil {
				t.Errorf("Allows(own session, own role) = %v", err)
			}
		})
	}
}

func TestMintUniqueIDs(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	req := MintRequest{Session: "s1", Role: RoleViewer, Name: "v1", TTL: time.Hour}
	a, _, errA := iss.Mint(req)
	b, _, errB := iss.Mint(req)
	if errA != nil || errB != nil {
		t.Fatalf("Mint: %v, %v", errA, errB)
	}
	ca, _ := iss.Verify(a)
	cb, _ := iss.Verify(b)
	if a == b || ca.ID == cb.ID {
		t.Errorf("two mints gave the same token or jti %q", ca.ID)
	}
}

func TestVerifyRejects(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	good, _, err := iss.Mint(MintRequest{Session: "s1", Role: RoleViewer, Name: "v1", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(c *Claims)) Claims {
		c := validClaims()
		edit(&c)
		return c
	}
	past := time.Now().Add(-time.Hour)

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrInvalidToken},
		{"garbage", "not-a-jwt", ErrInvalidToken},
		{"expired", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) {
			c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(past), jwt.NewNumericDate(past.Add(time.Minute))
		})), ErrExpiredToken},
		{"expired beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * Leeway))
		})), ErrExpiredToken},
		{"expired with wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), with(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(past)
		})), ErrInvalidToken},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), validClaims()), ErrInvalidToken},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims()), ErrInvalidToken},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, validClaims()), ErrInvalidToken},
		{"RS256 header with HMAC signature", forgeHeader(t, good, `{"alg":"RS256","typ":"JWT"}`), ErrInvalidToken},
		{"HS512", sign(t, jwt.SigningMethodHS512, testSecret, validClaims()), ErrInvalidToken},
		{"tampered payload", tamperRole(t, good, RoleTrainer), ErrInvalidToken},
		{"signature stripped", good[:strings.LastIndexByte(good, '.')+1], ErrInvalidToken},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) { c.Issuer = "other" })), ErrInvalidToken},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) { c.ExpiresAt = nil })), ErrInvalidToken},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) {
			c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Minute))
		})), ErrInvalidToken},
		{"empty session", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) { c.Session = "" })), ErrInvalidToken},
		{"bad session", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) { c.Session = "../etc" })), ErrInvalidToken},
		{"unknown role", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) { c.Role = "admin" })), ErrInvalidToken},
		{"bad name", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c *Claims) { c.Name = "Ha Noi" })), ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := iss.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
			other := ErrExpiredToken
			if tt.want == ErrExpiredToken {
				other = ErrInvalidToken
			}
			if errors.Is(err, other) {
				t.Errorf("error %v also matches %v", err, other)
			}
			if c != nil {
				t.Errorf("claims = %+v, want nil", c)
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	c := validClaims()
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Second))
	if _, err := iss.Verify(sign(t, jwt.SigningMethodHS256, testSecret, c)); err != nil {
		t.Errorf("token expired 2 s ago: %v, want accepted within %v leeway", err, Leeway)
	}
}

func TestVerifyClock(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	start := time.Now()
	iss.now = func() time.Time { return start }
	tok, exp, err := iss.Mint(MintRequest{Session: "s1", Role: RoleViewer, Name: "v1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		want error
	}{
		{"just minted", start, nil},
		{"at expiry", exp, nil},
		{"within leeway", exp.Add(Leeway - time.Second), nil},
		{"after leeway", exp.Add(Leeway + time.Second), ErrExpiredToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss.now = func() time.Time { return tt.at }
			if _, err := iss.Verify(tok); !errors.Is(err, tt.want) {
				t.Errorf("Verify at %v = %v, want %v", tt.at.Sub(exp), err, tt.want)
			}
		})
	}
}

// forgeHeader replaces the header of tok, keeping its payload and signature.
func forgeHeader(t *testing.T, tok, header string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(header))
	return strings.Join(parts, ".")
}

// tamperRole rewrites the role in tok's payload, keeping its header and signature.
func tamperRole(t *testing.T, tok string, role Role) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	payload["role"] = string(role)
	raw, err = json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestMintValidation(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	ok := MintRequest{Session: "s1", Role: RoleSite, Name: "ha-noi", TTL: time.Hour}
	tests := []struct {
		name string
		edit func(r *MintRequest)
		want []string // fragments of the error message
	}{
		{"empty session", func(r *MintRequest) { r.Session = "" }, []string{"session id"}},
		{"upper-case session", func(r *MintRequest) { r.Session = "Lecture" }, []string{"session id"}},
		{"empty role", func(r *MintRequest) { r.Role = "" }, []string{"unknown role"}},
		{"unknown role", func(r *MintRequest) { r.Role = "admin" }, []string{`unknown role "admin"`}},
		{"empty name", func(r *MintRequest) { r.Name = "" }, []string{"participant name"}},
		{"name with space", func(r *MintRequest) { r.Name = "ha noi" }, []string{"participant name"}},
		{"display too long", func(r *MintRequest) { r.Display = strings.Repeat("ă", MaxDisplayLen+1) }, []string{"display name"}},
		{"display control char", func(r *MintRequest) { r.Display = "a\nb" }, []string{"control characters"}},
		{"display invalid utf-8", func(r *MintRequest) { r.Display = "\xff" }, []string{"UTF-8"}},
		{"display right-to-left override", func(r *MintRequest) { r.Display = "Lớp \u202egnp.exe" }, []string{"U+202E"}},
		{"display left-to-right isolate", func(r *MintRequest) { r.Display = "a\u2066b\u2069" }, []string{"U+2066"}},
		{"display right-to-left mark", func(r *MintRequest) { r.Display = "a\u200fb" }, []string{"U+200F"}},
		{"display line separator", func(r *MintRequest) { r.Display = "a\u2028b" }, []string{"U+2028"}},
		{"ttl zero", func(r *MintRequest) { r.TTL = 0 }, []string{"lifetime"}},
		{"ttl too short", func(r *MintRequest) { r.TTL = 59 * time.Second }, []string{"lifetime"}},
		{"ttl too long", func(r *MintRequest) { r.TTL = MaxTTL + time.Second }, []string{"lifetime"}},
		{"everything wrong", func(r *MintRequest) { *r = MintRequest{} }, []string{"session id", "unknown role", "participant name", "lifetime"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.edit(&req)
			tok, _, err := iss.Mint(req)
			if !errors.Is(err, ErrInvalidClaims) {
				t.Fatalf("Mint(%+v) = %q, %v; want ErrInvalidClaims", req, tok, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewIssuer(t *testing.T) {
	if _, err := NewIssuer(testSecret[:MinSecretLen-1]); err == nil {
		t.Error("NewIssuer accepted a 31-byte secret")
	}
	if _, err := NewIssuer(nil); err == nil {
		t.Error("NewIssuer accepted a nil secret")
	}
	secret := []byte(string(testSecret))
	iss := newTestIssuer(t, secret)
	tok, _, err := iss.Mint(MintRequest{Session: "s1", Role: RoleViewer, Name: "v1", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	secret[0] ^= 0xff // the issuer must have its own copy
	if _, err := iss.Verify(tok); err != nil {
		t.Errorf("Verify after the caller changed its secret slice: %v", err)
	}
}

func TestAllows(t *testing.T) {
	c := &Claims{Session: "s1", Role: RoleSite, Name: "ha-noi"}
	tests := []struct {
		name    string
		claims  *Claims
		session string
		roles   []Role
		want    error
	}{
		{"same session any role", c, "s1", nil, nil},
		{"same session listed role", c, "s1", []Role{RoleTrainer, RoleSite}, nil},
		{"other session", c, "s2", nil, ErrWrongSession},
		{"other session and role", c, "s2", []Role{RoleTrainer}, ErrWrongSession},
		{"role not listed", c, "s1", []Role{RoleTrainer}, ErrWrongRole},
		{"empty session never matches", &Claims{Role: RoleSite}, "", nil, ErrWrongSession},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.claims.Allows(tt.session, tt.roles...); !errors.Is(err, tt.want) {
				t.Errorf("Allows(%q, %v) = %v, want %v", tt.session, tt.roles, err, tt.want)
			}
		})
	}
}

func TestRoleValid(t *testing.T) {
	for _, r := range []Role{RoleTrainer, RoleSite, RoleViewer, RoleLearner} {
		if !r.Valid() {
			t.Errorf("%q not valid", r)
		}
	}
	for _, r := range []Role{"", "admin", "Trainer", "site "} {
		if r.Valid() {
			t.Errorf("%q valid", r)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		header  string // Authorization; "" for none
		target  string
		want    string
		wantErr error
	}{
		{"header", "Bearer abc.def.ghi", "/x", "abc.def.ghi", nil},
		{"header scheme case-insensitive", "bearer abc", "/x", "abc", nil},
		{"header extra spaces", "  Bearer   abc  ", "/x", "abc", nil},
		{"query", "", "/x?token=abc.def", "abc.def", nil},
		{"header beats query", "Bearer fromheader", "/x?token=fromquery", "fromheader", nil},
		{"basic header falls back to query", "Basic dXNlcjpwdw==", "/x?token=q", "q", nil},
		{"missing", "", "/x", "", ErrMissingToken},
		{"empty query", "", "/x?token=", "", ErrMissingToken},
		{"basic", "Basic x", "/x", "", ErrMissingToken},
		{"bearer alone", "Bearer", "/x", "", ErrMissingToken},
		{"bearer space", "Bearer ", "/x", "", ErrMissingToken},
		{"two tokens", "Bearer a b", "/x", "", ErrMissingToken},
		{"token without scheme", "abc.def.ghi", "/x", "", ErrMissingToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			got, err := BearerToken(r)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("BearerToken = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"site", "ha-noi", true},
		{"digits", "2025", true},
		{"single letter", "a", true},
		{"underscore inside", "lop_10a", true},
		{"trailing dash", "a-", true},
		{"max length", strings.Repeat("a", 63), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", 64), false},
		{"upper case", "Ha-Noi", false},
		{"leading dash", "-a", false},
		{"leading underscore", "_a", false},
		{"space", "ha noi", false},
		{"slash", "a/b", false},
		{"dot dot", "..", false},
		{"dot", "a.b", false},
		{"diacritics", "hà-nội", false},
		{"percent", "a%2fb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidName(tt.in); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAdminTokenMatches(t *testing.T) {
	tests := []struct {
		name      string
		got, want string
		match     bool
	}{
		{"equal", "s3cret-admin-token", "s3cret-admin-token", true},
		{"different", "s3cret-admin-tokeN", "s3cret-admin-token", false},
		{"prefix", "s3cret", "s3cret-admin-token", false},
		{"empty got", "", "s3cret-admin-token", false},
		{"empty want never matches", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m := AdminTokenMatches(tt.got, tt.want); m != tt.match {
				t.Errorf("AdminTokenMatches(%q, %q) = %v, want %v", tt.got, tt.want, m, tt.match)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	s1, err := GenerateSecret(MinSecretLen)
	if err != nil || len(s1) != MinSecretLen {
		t.Fatalf("GenerateSecret = %d bytes, %v", len(s1), err)
	}
	s2, _ := GenerateSecret(MinSecretLen)
	if string(s1) == string(s2) {
		t.Error("two generated secrets are equal")
	}
	if _, err := GenerateSecret(MinSecretLen - 1); err == nil {
		t.Error("GenerateSecret accepted a short length")
	}
	if _, err := NewIssuer(s1); err != nil {
		t.Errorf("NewIssuer(generated secret): %v", err)
	}

	a1, err := GenerateAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := GenerateAdminToken()
	if len(a1) < 32 || a1 == a2 {
		t.Errorf("admin tokens %q, %q: want distinct and at least 32 characters", a1, a2)
	}
	if strings.Trim(a1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		t.Errorf("admin token %q is not URL-safe", a1)
	}
}
