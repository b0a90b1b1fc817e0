//go:build !(linux && (amd64 || arm64))

package peer

import "net"

// batchConn batches sends with sendmmsg on Linux (amd64, arm64); elsewhere it is
// the plain socket.
type batchConn struct{ *net.UDPConn }

func newBatchConn(c *net.UDPConn) (*batchConn, error) { return &batchConn{c}, nil }

func (c *batchConn) begin() {}
func (c *batchConn) end()   {}
