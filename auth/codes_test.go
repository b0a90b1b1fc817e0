package auth

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

// codeTable is an in-memory CodeResolver: the catalogue's contract (hash → grant)
// without its file.
type codeTable map[[sha256.Size]byte]CodeGrant

func (t codeTable) ResolveCode(h [sha256.Size]byte) (CodeGrant, bool) {
	g, ok := t[h]
	return g, ok
}

// TestGenerateCode: codes are 16 characters of the alphabet in groups of four,
// distinct, and hash as their canonical form does.
func TestGenerateCode(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 2000 {
		code, hash, err := GenerateCode()
		if err != nil {
			t.Fatal(err)
		}
		groups := strings.Split(code, "-")
		if len(groups) != CodeLength/codeGroup || len(code) != CodeLength+CodeLength/codeGroup-1 {
			t.Fatalf("code %q is not four groups of four", code)
		}
		canon, ok := CanonicalCode(code)
		if !ok || canon != strings.ReplaceAll(code, "-", "") {
			t.Fatalf("CanonicalCode(%q) = %q, %v", code, canon, ok)
		}
		for _, r := range canon {
			if !strings.ContainsRune(CodeAlphabet, r) {
				t.Fatalf("code %q has %q, not in the alphabet", code, r)
			}
			counts[r]++
		}
		if h, _ := HashCode(code); h != hash || h != sha256.Sum256([]byte(canon)) {
			t.Fatalf("hash of %q differs from the one GenerateCode returned", code)
		}
		if seen[code] {
			t.Fatalf("code %q drawn twice", code)
		}
		seen[code] = true
	}
	// Every symbol is used: a broken draw (a modulo that never reaches the end of
	// the alphabet) would leave some out. 32000 draws, ~1032 expected for each.
	for _, r := range CodeAlphabet {
		if counts[r] < 700 {
			t.Errorf("symbol %q drawn %d times in 32000, expected about 1032", r, counts[r])
		}
	}
	for _, bad := range "01ilo" {
		if strings.ContainsRune(CodeAlphabet, bad) {
			t.Errorf("alphabet has the look-alike %q", bad)
		}
	}
}

// TestCanonicalCode: a code typed in upper case, without dashes or with spaces is
// the same code; anything else (a JWT, the admin token, a short string, a letter
// outside the alphabet) is not a code.
func TestCanonicalCode(t *testing.T) {
	for _, in := range []string{"k7m2-x9qa-4hdn-c3vt", "K7M2X9QA4HDNC3VT", "k7m2 x9qa 4hdn c3vt", "k7m2x9qa4hdn-c3vt"} {
		if got, ok := CanonicalCode(in); !ok || got != "k7m2x9qa4hdnc3vt" {
			t.Errorf("CanonicalCode(%q) = %q, %v; want k7m2x9qa4hdnc3vt", in, got, ok)
		}
	}
	for _, in := range []string{"", "k7m2-x9qa-4hdn", "k7m2-x9qa-4hdn-c3vt-2", "k7m2-x9qa-4hdn-c3v0", "k7m2-x9qa-4hdn-c3vl",
		"eyJhbGciOiJIUzI1NiJ9.e30.sig", testAdminToken, "k7m2-x9qa-4hdn-c3vt\x00", "-----------------------------------"} {
		if got, ok := CanonicalCode(in); ok {
			t.Errorf("CanonicalCode(%q) = %q, true; want not a code", in, got)
		}
	}
}

// TestAuthenticateCode: a code minted for a session is taken as a token of its role
// and name; an unknown code is a failure counted for the address; an expired one is
// ErrExpiredToken and not counted; an address out of tries gets no code looked up,
// even a right one, while our signed tokens still work from it.
func TestAuthenticateCode(t *testing.T) {
	const burst = 3
	a, clock := newTestAuthenticator(t, burst, time.Hour)
	a.Issuer.now = clock.now
	good, goodHash, err := GenerateCode()
	if err != nil {
		t.Fatal(err)
	}
	old, oldHash, _ := GenerateCode()
	table := codeTable{
		goodHash: {ID: "c1", Session: "k3x9abcd12", Role: RoleSite, Name: "hall-decoder", Display: "Hội trường A",
			IssuedAt: clock.t, ExpiresAt: clock.t.Add(time.Hour)},
		oldHash: {ID: "c2", Session: "k3x9abcd12", Role: RoleViewer, Name: "old", IssuedAt: clock.t.Add(-2 * time.Hour),
			ExpiresAt: clock.t.Add(-time.Hour)},
	}
	withoutCodes := a.Issuer
	a.Issuer = a.Issuer.WithCodes(table)
	const addr = "198.51.100.7"

	for _, typed := range []string{good, strings.ToUpper(strings.ReplaceAll(good, "-", ""))} {
		c, admin, err := a.Authenticate(addr, typed)
		if err != nil || admin {
			t.Fatalf("Authenticate(code %q) = admin %v, %v", typed, admin, err)
		}
		if c.Session != "k3x9abcd12" || c.Role != RoleSite || c.Name != "hall-decoder" || c.Display != "Hội trường A" || c.ID != "c1" {
			t.Fatalf("claims of the code = %+v", c)
		}
		if err := c.Allows("k3x9abcd12", LiveWatchRoles()...); err != nil {
			t.Fatalf("a site code may not watch its session: %v", err)
		}
		if err := c.Allows("otherother"); !errors.Is(err, ErrWrongSession) {
			t.Fatalf("a code of one session allowed in another: %v", err)
		}
	}
	// The issuer without codes does not know it (the web layer and RTSP must be given the same one).
	if _, _, err := (&Authenticator{Issuer: withoutCodes}).Authenticate(addr, good); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("an issuer without codes took a code: %v", err)
	}

	for range 5 { // expired: said so, never counted
		if _, _, err := a.Authenticate(addr, old); !errors.Is(err, ErrExpiredToken) {
			t.Fatalf("expired code: err = %v, want ErrExpiredToken", err)
		}
	}
	for i := range burst {
		wrong, _, _ := GenerateCode()
		if _, _, err := a.Authenticate(addr, wrong); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("wrong code %d: err = %v, want ErrInvalidToken", i, err)
		}
	}
	if _, _, err := a.Authenticate(addr, good); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("after %d wrong codes the right one was looked up: err = %v, want ErrTooManyFailures", burst, err)
	}
	site, _, err := a.Issuer.Mint(MintRequest{Session: "k3x9abcd12", Role: RoleSite, Name: "hue", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Authenticate(addr, site); err != nil {
		t.Fatalf("a signed token from the guessing address: %v", err)
	}
	if _, _, err := a.Authenticate("198.51.100.8", good); err != nil {
		t.Fatalf("the code from another address: %v", err)
	}
	clock.t = clock.t.Add(time.Hour + Leeway) // the good code expires too
	if _, _, err := a.Authenticate("198.51.100.8", good); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("code past its expiry: err = %v, want ErrExpiredToken", err)
	}
}

// TestAuthenticateCodeRoles: a grant with a role codes may not carry (a learner, an
// embed) or a bad name is refused as invalid, whatever the store says.
func TestAuthenticateCodeRoles(t *testing.T) {
	a, clock := newTestAuthenticator(t, 100, time.Hour)
	a.Issuer.now = clock.now
	table := codeTable{}
	var codes []string
	for _, g := range []CodeGrant{
		{Session: "k3x9abcd12", Role: RoleLearner, Name: "x"},
		{Session: "k3x9abcd12", Role: RoleEmbed, Name: "x"},
		{Session: "k3x9abcd12", Role: RoleSite, Name: "Bad Name"},
		{Session: "", Role: RoleSite, Name: "x"},
	} {
		code, hash, _ := GenerateCode()
		g.ID, g.ExpiresAt = "c", clock.t.Add(time.Hour)
		table[hash] = g
		codes = append(codes, code)
	}
	a.Issuer = a.Issuer.WithCodes(table)
	for i, code := range codes {
		if _, _, err := a.Authenticate("192.0.2.9", code); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("grant %d: err = %v, want ErrInvalidToken", i, err)
		}
	}
}

// FuzzCanonicalCode: any input is either refused or turned into CodeLength symbols
// of the alphabet that are their own canonical form.
func FuzzCanonicalCode(f *testing.F) {
	for _, s := range []string{"k7m2-x9qa-4hdn-c3vt", "K7M2X9QA4HDNC3VT", "", "----", "eyJ.a.b", "k7m2-x9qa-4hdn-c3v\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := CanonicalCode(s)
		if !ok {
			return
		}
		if len(c) != CodeLength {
			t.Fatalf("CanonicalCode(%q) = %q: %d characters", s, c, len(c))
		}
		for i := 0; i < len(c); i++ {
			if strings.IndexByte(CodeAlphabet, c[i]) < 0 {
				t.Fatalf("CanonicalCode(%q) = %q: %q not in the alphabet", s, c, c[i])
			}
		}
		if again, ok := CanonicalCode(c); !ok || again != c {
			t.Fatalf("CanonicalCode(%q) = %q, %v; not its own canonical form", c, again, ok)
		}
	})
}
