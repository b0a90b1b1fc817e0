package sfu

import (
	"errors"
	"testing"
)

// TestReservationsDoNotStarveSubscribers: offers still connecting have a budget of
// their own; a full budget of them never keeps a connected subscriber out, and a
// confirmed reservation counts as a subscriber until released.
func TestReservationsDoNotStarveSubscribers(t *testing.T) {
	reg := NewRegistry(RegistryConfig{MaxSubscribers: 2})
	defer reg.CloseAll()
	s := reg.Session("lecture")
	var pending []*Reservation
	for i := 0; i < 2; i++ {
		r, err := s.Reserve()
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, r)
	}
	if _, err := s.Reserve(); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("a third connecting offer: %v, want ErrTooManySubscribers", err)
	}
	if s.Subscribers() != 0 || s.Connecting() != 2 {
		t.Fatalf("subscribers %d connecting %d, want 0 and 2", s.Subscribers(), s.Connecting())
	}
	// Two subscribers that did connect (an RTSP reader, a confirmed WHEP peer) get in
	// although two offers are still connecting.
	rel, err := s.AddSubscriber()
	if err != nil {
		t.Fatalf("a subscriber refused because of connecting offers: %v", err)
	}
	if err := pending[0].Confirm(); err != nil {
		t.Fatal(err)
	}
	if s.Subscribers() != 2 || s.Connecting() != 1 {
		t.Fatalf("subscribers %d connecting %d, want 2 and 1", s.Subscribers(), s.Connecting())
	}
	// The session is full now: the last connecting one cannot be confirmed, and a new
	// offer is refused at once.
	if err := pending[1].Confirm(); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("confirm in a full session: %v", err)
	}
	if _, err := s.Reserve(); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("reserve in a full session: %v", err)
	}
	pending[1].Release() // harmless after a failed Confirm
	pending[0].Release()
	pending[0].Release()
	rel()
	if s.Subscribers() != 0 || s.Connecting() != 0 || reg.subscribers.Load() != 0 {
		t.Fatalf("after release: subscribers %d connecting %d registry %d", s.Subscribers(), s.Connecting(), reg.subscribers.Load())
	}
}
