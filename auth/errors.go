package auth

import "errors"

// Errors returned by this package. They are wrapped with context; match them with errors.Is.
//
// The web layer maps them to HTTP status codes in one place: ErrMissingToken, ErrInvalidToken
// and ErrExpiredToken mean "who are you?" (401); ErrWrongSession and ErrWrongRole mean "you may
// not do this" (403); ErrInvalidClaims is a bad mint request (400).
var (
	// ErrMissingToken: the request carries no bearer token (no Authorization header with the
	// Bearer scheme and no token query parameter).
	ErrMissingToken = errors.New("auth: missing bearer token")

	// ErrInvalidToken: the token is malformed, is not HS256, has a bad signature or issuer, or
	// carries claims that are not valid. The wrapped jwt error says which.
	ErrInvalidToken = errors.New("auth: invalid token")

	// ErrExpiredToken: the token was signed by us but its expiry has passed. It does not match
	// ErrInvalidToken, so a client can tell "log in again" from "this is garbage".
	ErrExpiredToken = errors.New("auth: token expired")

	// ErrWrongSession: a valid token used for another session than the one it was minted for.
	ErrWrongSession = errors.New("auth: token is for another session")

	// ErrWrongRole: a valid token whose role may not perform the operation.
	ErrWrongRole = errors.New("auth: role not allowed")

	// ErrInvalidClaims: Mint was asked for a token with an invalid session id, role, name,
	// display name or lifetime.
	ErrInvalidClaims = errors.New("auth: invalid token request")
)

// ErrTooManyFailures: the client's address presented too many bad tokens lately; it is
// refused for a while (HTTP 429). The error is a *TooManyFailuresError.
var ErrTooManyFailures = errors.New("auth: too many failed authentications from this address")
