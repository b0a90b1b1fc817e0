package main

import (
	"net"
	"testing"
	"time"
)

// TestKernelStamp reads a datagram through a stampConn on loopback and finds the
// kernel's receive timestamp in its control message.
func TestKernelStamp(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	c, err := newStampConn(rx, subscriberVideoPT, &shared{sent: newSendLog()})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	before := time.Now().UnixNano()
	if _, err := tx.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromAddrPort(buf)
	if err != nil || n != 5 {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	at, ok := kernelStamp(c.oob[:])
	if !ok {
		t.Fatal("no SCM_TIMESTAMPNS")
	}
	if after := time.Now().UnixNano(); at < before-int64(time.Second) || at > after {
		t.Fatalf("kernel stamp %d outside [%d, %d]", at, before, after)
	}
	if _, ok := kernelStamp([]byte{1, 2, 3}); ok {
		t.Fatal("garbage parsed")
	}
}
