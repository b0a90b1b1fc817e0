package events

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// frame is one parsed Server-Sent Events frame.
type frame struct {
	id, event, data string
	comments        []string
}

// readFrame reads up to the next blank line. A frame of comments only is returned as such.
func readFrame(r *bufio.Reader) (frame, error) {
	var f frame
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return f, nil
		}
		if c, ok := strings.CutPrefix(line, ":"); ok {
			f.comments = append(f.comments, strings.TrimSpace(c))
			continue
		}
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "id":
			f.id = value
		case "event":
			f.event = value
		case "data":
			f.data += value
		}
	}
}

// readEvent skips comment-only frames and decodes the next event's data.
func readEvent(t *testing.T, r *bufio.Reader) (frame, Event) {
	t.Helper()
	for {
		f, err := readFrame(r)
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		if f.event == "" && f.data == "" {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(f.data), &ev); err != nil {
			t.Fatalf("data %q: %v", f.data, err)
		}
		return f, ev
	}
}

// sseServer serves GET /?session=… with a subscription to b and ServeSSE; the error each
// handler returns is sent on the returned channel after its subscription is cancelled.
func sseServer(t *testing.T, b *Broker, keepalive time.Duration) (*httptest.Server, <-chan error) {
	t.Helper()
	done := make(chan error, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session := r.URL.Query().Get("session")
		events, cancel := b.Subscribe(session)
		snapshot := func() any { return map[string]any{"session": session, "live": true} }
		err := ServeSSE(w, r, events, snapshot, keepalive)
		cancel()
		done <- err
	}))
	t.Cleanup(srv.Close)
	return srv, done
}

// streamS1 is a stream of session s1 from a new broker through ServeSSE with
// that keepalive, disconnected (and the broker closed) at the end of the test;
// done is sseServer's.
func streamS1(t *testing.T, keepalive time.Duration) (*Broker, *bufio.Reader, <-chan error) {
	t.Helper()
	b := NewBroker(Options{})
	t.Cleanup(b.Close)
	srv, done := sseServer(t, b, keepalive)
	_, r, disconnect := connect(t, srv, "s1")
	t.Cleanup(disconnect)
	return b, r, done
}

// connect opens a stream; cancel disconnects it.
func connect(t *testing.T, srv *httptest.Server, session string) (*http.Response, *bufio.Reader, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?session="+session, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	return resp, bufio.NewReader(resp.Body), cancel
}

func handlerResult(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatal("ServeSSE did not return")
	}
	return nil
}

func TestServeSSEStream(t *testing.T) {
	b := NewBroker(Options{})
	defer b.Close()
	srv, done := sseServer(t, b, time.Hour)
	resp, r, disconnect := connect(t, srv, "s1")
	defer disconnect()

	for h, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}

	f, snap := readEvent(t, r)
	if f.event != TypeSnapshot || f.id != "" || snap.Type != TypeSnapshot {
		t.Fatalf("first frame %+v, want a snapshot without id", f)
	}
	if data, _ := snap.Data.(map[string]any); data["session"] != "s1" || data["live"] != true {
		t.Fatalf("snapshot data = %#v", snap.Data)
	}

	// The handler subscribed before answering, so these all reach the stream.
	b.Publish("s1", TypeSessionLive, nil)
	b.Publish("s2", TypeSessionLive, "other session")
	b.Publish("s1", TypePublicationAdded, map[string]string{"name": "trainer"})
	b.Publish("s1", TypeSubscribers, 63)

	want := []struct {
		typ  string
		seq  uint64
		data any
	}{
		{TypeSessionLive, 1, nil},
		{TypePublicationAdded, 3, map[string]any{"name": "trainer"}},
		{TypeSubscribers, 4, float64(63)},
	}
	for _, w := range want {
		f, ev := readEvent(t, r)
		if f.event != w.typ || f.id != strconv.FormatUint(w.seq, 10) {
			t.Fatalf("frame %+v, want event %s id %d", f, w.typ, w.seq)
		}
		if ev.Session != "s1" || ev.Type != w.typ || ev.Seq != w.seq || ev.Time.IsZero() {
			t.Fatalf("event %+v, want session s1 type %s seq %d", ev, w.typ, w.seq)
		}
		if got, _ := json.Marshal(ev.Data); string(got) != mustJSON(t, w.data) {
			t.Fatalf("data %s, want %s", got, mustJSON(t, w.data))
		}
	}

	// The client goes away: the handler returns nil and its subscription is gone.
	disconnect()
	if err := handlerResult(t, done); err != nil {
		t.Fatalf("ServeSSE after disconnect: %v", err)
	}
	if n := b.Subscribers("s1"); n != 0 {
		t.Fatalf("Subscribers = %d after disconnect, want 0", n)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServeSSEEndsWhenChannelCloses(t *testing.T) {
	b := NewBroker(Options{})
	srv, done := sseServer(t, b, time.Hour)
	_, r, disconnect := connect(t, srv, "s1")
	defer disconnect()
	readEvent(t, r) // snapshot

	b.Close() // closes the subscription: the handler returns and the response ends
	if err := handlerResult(t, done); err != nil {
		t.Fatalf("ServeSSE: %v", err)
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

func TestServeSSESlowClientEvicted(t *testing.T) {
	b := NewBroker(Options{Buffer: 1})
	defer b.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events, cancel := b.Subscribe("s1")
		defer cancel()
		_ = ServeSSE(w, r, events, func() any {
			// Two events arrive while the handler is still busy with the snapshot: the
			// one-event buffer overflows and the subscriber is disconnected.
			b.Publish("s1", TypeHands, 1)
			b.Publish("s1", TypeHands, 2)
			return nil
		}, time.Hour)
	}))
	defer srv.Close()
	_, r, disconnect := connect(t, srv, "s1")
	defer disconnect()

	if f, _ := readEvent(t, r); f.event != TypeSnapshot {
		t.Fatalf("first frame %+v", f)
	}
	if f, ev := readEvent(t, r); ev.Data != float64(1) {
		t.Fatalf("frame %+v, want the buffered event", f)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after eviction read %q, %v; want a clean end of stream", rest, err)
	}
	if b.Evicted() != 1 {
		t.Fatalf("Evicted = %d, want 1", b.Evicted())
	}
}

func TestServeSSEKeepalive(t *testing.T) {
	_, r, _ := streamS1(t, time.Millisecond)

	for {
		f, err := readFrame(r)
		if err != nil {
			t.Fatalf("no ping before %v", err)
		}
		if len(f.comments) == 1 && f.comments[0] == "ping" && f.event == "" && f.data == "" {
			return
		}
	}
}

func TestServeSSEBadData(t *testing.T) {
	b, r, done := streamS1(t, time.Hour)
	readEvent(t, r) // snapshot

	b.Publish("s1", TypeHands, make(chan int)) // cannot be encoded as JSON
	err := handlerResult(t, done)
	var jsonErr *json.UnsupportedTypeError
	if !errors.As(err, &jsonErr) {
		t.Fatalf("ServeSSE = %v, want a JSON encoding error", err)
	}
}

// noFlushWriter is a ResponseWriter that cannot stream.
type noFlushWriter struct {
	h    http.Header
	code int
}

func (w *noFlushWriter) Header() http.Header         { return w.h }
func (w *noFlushWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *noFlushWriter) WriteHeader(code int)        { w.code = code }

func TestServeSSEUnflushable(t *testing.T) {
	w := &noFlushWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	events := make(chan Event)
	err := ServeSSE(w, r, events, nil, time.Hour)
	if !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("ServeSSE = %v, want http.ErrNotSupported", err)
	}
}

// TestServeSSEOutlivesServerTimeouts: a stream lives longer than the server's read and
// write timeouts (which bound ordinary requests): only its idle writes are bounded.
func TestServeSSEOutlivesServerTimeouts(t *testing.T) {
	b := NewBroker(Options{})
	defer b.Close()
	done := make(chan error, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events, cancel := b.Subscribe("s1")
		defer cancel()
		done <- ServeSSE(w, r, events, nil, time.Hour)
	}))
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	_, r, disconnect := connect(t, srv, "s1")
	defer disconnect()
	readEvent(t, r) // snapshot

	time.Sleep(500 * time.Millisecond) // well past both timeouts
	b.Publish("s1", TypeHands, "still here")
	if _, ev := readEvent(t, r); ev.Data != "still here" {
		t.Fatalf("event %+v", ev)
	}
	disconnect()
	if err := handlerResult(t, done); err != nil {
		t.Fatalf("ServeSSE: %v", err)
	}
}

// TestServeSSEStalledReaderDropped: a client that stops reading (its connection open, its
// receive window full) is dropped when a write cannot complete within the write timeout,
// instead of holding the handler forever.
func TestServeSSEStalledReaderDropped(t *testing.T) {
	defer func(d time.Duration) { minWriteTimeout = d }(minWriteTimeout)
	minWriteTimeout = 200 * time.Millisecond
	b := NewBroker(Options{Buffer: 4096})
	defer b.Close()
	srv, done := sseServer(t, b, 50*time.Millisecond) // write timeout: max(2×50 ms, 200 ms)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /?session=s1 HTTP/1.1\r\nHost: lectern\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing; the server keeps sending until its writes block.
	big := strings.Repeat("x", 64<<10)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-done:
			// The write timed out: net/http cancelled the request, and ServeSSE ended
			// (nil: a client gone is no error of the stream), closing the connection.
			t.Logf("stalled reader dropped: %v", err)
			if n := b.Subscribers("s1"); n != 0 {
				t.Fatalf("Subscribers = %d after the drop, want 0", n)
			}
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			if n, err := io.Copy(io.Discard, conn); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server kept the connection of the stalled reader open (%d bytes read)", n)
			}
			return
		case <-deadline:
			t.Fatal("the handler still runs for a client that stopped reading")
		case <-time.After(time.Millisecond):
			b.Publish("s1", TypeHands, big)
		}
	}
}
