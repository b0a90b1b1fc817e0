package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestNodeCredential(t *testing.T) {
	iss := newTestIssuer(t, testSecret)
	start := time.Now()
	iss.now = func() time.Time { return start }
	tok, err := iss.MintNode("edge-hue-1")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := iss.VerifyNode(tok); err != nil || id != "edge-hue-1" {
		t.Fatalf("VerifyNode = %q, %v", id, err)
	}
	// Never a participant's token: Verify refuses it, whatever the caller checks next.
	if _, err := iss.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify(node credential) = %v, want ErrInvalidToken", err)
	}
	// And a participant's token is no node credential.
	trainer, _, err := iss.Mint(MintRequest{Session: "s1", Role: RoleTrainer, Name: "t", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.VerifyNode(trainer); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("VerifyNode(trainer token) = %v, want ErrWrongRole", err)
	}
	// Mint does not make node credentials (an admin's token request cannot).
	if _, _, err := iss.Mint(MintRequest{Session: "s1", Role: RoleNode, Name: "b", TTL: time.Hour}); !errors.Is(err, ErrInvalidClaims) {
		t.Fatalf("Mint(role node) = %v, want ErrInvalidClaims", err)
	}
	if _, err := iss.MintNode("Bad Node"); !errors.Is(err, ErrInvalidClaims) {
		t.Fatalf("MintNode(bad id) = %v, want ErrInvalidClaims", err)
	}
	// Short-lived.
	iss.now = func() time.Time { return start.Add(NodeTokenTTL + Leeway + time.Second) }
	if _, err := iss.VerifyNode(tok); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("VerifyNode after its lifetime = %v, want ErrExpiredToken", err)
	}
	iss.now = time.Now
	// Forged: another secret; a node claim naming a session.
	other := newTestIssuer(t, []byte("another-secret-another-secret-32b"))
	forged, _ := other.MintNode("b")
	if _, err := iss.VerifyNode(forged); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("VerifyNode(forged) = %v, want ErrInvalidToken", err)
	}
	c := Claims{Session: "s1", Role: RoleNode, Name: "b", RegisteredClaims: jwt.RegisteredClaims{Issuer: issuerName,
		IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
	if _, err := iss.VerifyNode(sign(t, jwt.SigningMethodHS256, testSecret, c)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("VerifyNode(node claim with a session) = %v, want ErrInvalidToken", err)
	}
}
