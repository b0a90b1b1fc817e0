// Package web is Lectern's HTTP layer (chi): the session and token REST API,
// WHIP/WHEP (RFC 9725) signalling, talk-back (hands and the floor), the Server-Sent
// Events stream pages stay current with, health and metrics. Errors become HTTP
// statuses in exactly one place, httpError.
package web
