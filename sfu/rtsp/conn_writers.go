package rtsp

import (
	"lectern/internal/workpool"
)

// connWriters send what TCP readers' connections gathered (see lecternConn.Write)
// from a few goroutines, one per CPU, instead of one per connection: gortsplib's
// writer goroutine of each reader appends its packets to the connection's pending
// bytes and notifies the connection's worker, which sends every notified
// connection's pending bytes with one non-blocking system call each. Per packet
// and reader that saves a goroutine wake-up; the batches grow too, since a worker
// serves many connections per wake-up while their writers keep appending. A
// connection whose socket buffer is full (the reader is slow) is handed to a
// goroutine of its own that waits for it (lecternConn.sendBlocking), so a stalled
// reader never holds a worker. The workers are a workpool, as the WebRTC egress's.
type connWriters struct {
	pool *workpool.Pool[*lecternConn]
}

// connWriter is the worker a connection is assigned to.
type connWriter = workpool.Worker[*lecternConn]

func newConnWriters() *connWriters {
	return &connWriters{pool: workpool.New((*lecternConn).sendSome, workpool.Options{})}
}

// assign picks the worker of a new connection.
func (ws *connWriters) assign() *connWriter { return ws.pool.Assign() }

// close stops the workers. Connections still pending are not sent (the server is
// closing them).
func (ws *connWriters) close() { ws.pool.Close() }
