package peer

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"lectern/internal/testpeer"
	"lectern/sfu"
)

// TestOfferedAddrs: IPv6 link-local and (unless the socket is loopback) loopback
// addresses get no host candidate; a socket bound to such an address keeps it.
func TestOfferedAddrs(t *testing.T) {
	udp := func(s string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(s), Port: 8189} }
	str := func(as []net.Addr) string {
		var out []string
		for _, a := range as {
			out = append(out, a.String())
		}
		return strings.Join(out, " ")
	}
	all := []net.Addr{udp("127.0.0.1"), udp("192.0.2.2"), udp("::1"), udp("fd00::2"), udp("fe80::fc:ff:fe00:1"), udp("169.254.1.1")}
	if got, want := str(offeredAddrs(all, false)), "192.0.2.2:8189 [fd00::2]:8189 169.254.1.1:8189"; got != want {
		t.Errorf("offered %s, want %s", got, want)
	}
	if got, want := str(offeredAddrs(all, true)), "127.0.0.1:8189 192.0.2.2:8189 [::1]:8189 [fd00::2]:8189 169.254.1.1:8189"; got != want {
		t.Errorf("loopback socket: offered %s, want %s", got, want)
	}
	only := []net.Addr{udp("fe80::1")}
	if got := str(offeredAddrs(only, false)); got != "[fe80::1]:8189" {
		t.Errorf("a socket bound to a link-local address offers %q, want it kept", got)
	}
}

// TestWildcardEdgeAddresses: an edge on the wildcard address (as deployed) gathers
// on every up interface's address that a candidate is offered for, and nothing
// else; its answers' host candidates are among those addresses, and a publisher
// and a subscriber connect through it.
func TestWildcardEdgeAddresses(t *testing.T) {
	e, err := New(Config{UDPAddr: "0.0.0.0:0"})
	if err != nil {
		t.Fatal(err)
	}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(func() {
		cancel()
		_ = e.Close()
		reg.CloseAll()
	})
	f := &fixture{edge: e, reg: reg, sess: reg.Session("lecture"), ctx: ctx}
	listen := e.udpMux.GetListenAddresses()
	got := map[string]bool{}
	for _, a := range listen {
		ip := a.(*net.UDPAddr).IP
		if ip.IsLoopback() || ip.To4() == nil && ip.IsLinkLocalUnicast() {
			t.Errorf("gathers on %s: no candidate is offered there", a)
		}
		got[ip.String()] = true
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ip := a.(*net.IPNet).IP
			if ip.IsLoopback() || ip.To4() == nil && ip.IsLinkLocalUnicast() {
				continue
			}
			if !got[ip.String()] {
				t.Errorf("%s (%s) is not gathered on; gathered: %v", ip, ifc.Name, listen)
			}
		}
	}
	if again := e.udpMux.GetListenAddresses(); len(again) != len(listen) || len(listen) > 0 && &again[0] != &listen[0] {
		t.Errorf("the addresses were listed again within %v", listenAddrsTTL)
	}

	var answers []string
	record := func(sig testpeer.Signal) testpeer.Signal {
		return func(offer string) (string, error) {
			ans, err := sig(offer)
			answers = append(answers, ans)
			return ans, err
		}
	}
	f.startPublisherSignal(t, testpeer.Options{}, record(f.publishSignal(sfu.TrainerPublication)))
	sub, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 1, 1, record(f.subscribeSignal(trainerLayout)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	if err := sub.WaitPackets(ctx, 0, 30); err != nil {
		t.Fatalf("subscriber's video through the wildcard edge: %v", err)
	}
	for _, answer := range answers {
		n := 0
		for _, line := range strings.Split(answer, "\n") {
			if f := strings.Fields(line); strings.HasPrefix(line, "a=candidate:") && len(f) > 7 && f[7] == "host" && strings.EqualFold(f[2], "udp") {
				n++
				if !got[f[4]] {
					t.Errorf("answer's host candidate %s is not a gathered address %v", f[4], listen)
				}
			}
		}
		if n == 0 {
			t.Errorf("no UDP host candidate in the answer:\n%s", answer)
		}
	}
}

// TestHostNetRefresh: the connections' shared interface list is the host's, kept
// for listenAddrsTTL and then listed afresh (a new list, not one updated under
// agents that hold it).
func TestHostNetRefresh(t *testing.T) {
	n, err := newHostNet()
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := n.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	host, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != len(host) {
		t.Fatalf("%d interfaces, the host has %d", len(ifs), len(host))
	}
	first := n.cur
	if n.current() != first {
		t.Fatal("listed again within the TTL")
	}
	n.mu.Lock()
	n.at = n.at.Add(-listenAddrsTTL)
	n.mu.Unlock()
	if n.current() == first {
		t.Fatal("not listed again after the TTL")
	}
	if lo, err := n.InterfaceByName(host[0].Name); err != nil || lo.Index != host[0].Index {
		t.Fatalf("interface %s: %v %v", host[0].Name, lo, err)
	}
}
