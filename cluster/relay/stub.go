package relay

import (
	"context"
	"errors"
	"net/http"
)

// Handler is the origin side (skeleton; implementation follows).
type Handler struct{ cfg ServerConfig }

// NewHandler returns the origin side's handler, to mount at /cluster/relay/.
func NewHandler(cfg ServerConfig) *Handler { return &Handler{cfg: cfg} }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented yet", http.StatusNotImplemented)
}

// Relays returns the relays served to other nodes.
func (h *Handler) Relays() []Info { return nil }

// Close ends every relay served to other nodes; call it before the edge closes.
func (h *Handler) Close() error { return nil }

// Manager is the edge side.
type Manager struct{ cfg Config }

// New returns a Manager.
func New(cfg Config) *Manager { return &Manager{cfg: cfg} }

// Pull makes the local session carry publication from the node at originURL.
func (m *Manager) Pull(ctx context.Context, session, publication, originURL string) error {
	return errors.New("relay: not implemented yet")
}

// Stop ends a relay now.
func (m *Manager) Stop(session, publication string) {}

// Relays returns the relays pulled to this node.
func (m *Manager) Relays() []Info { return nil }

// Close ends every relay.
func (m *Manager) Close() error { return nil }
