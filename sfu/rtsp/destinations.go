package rtsp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// ErrDestinationRefused: a pull source names (or resolves to) an address the server
// may not connect to. A source is a request that makes the server open connections
// on someone's behalf; without a limit it reaches the server's own loopback services
// and the cloud metadata address (169.254.169.254).
var ErrDestinationRefused = errors.New("rtsp source destination not allowed")

// Destinations is the allow-list of where pull sources may connect: networks
// (CIDRs or single addresses) and host names. The zero value (and nil) is the
// default policy: any address except loopback, link-local, unspecified, multicast
// and broadcast ones.
//
// When the list is not empty, a source may connect only to an address in a listed
// network, or to the address a listed host name resolves to (still not to one of
// the addresses refused by default, unless a listed network covers it). The check is
// made on the address actually dialled, at every connection attempt, so a name that
// resolves elsewhere later (DNS rebinding) is refused then.
type Destinations struct {
	nets  []netip.Prefix
	hosts []string // lower case; "*.example.org" matches every name under example.org
}

// ParseDestinations reads an allow-list: "10.20.0.0/16", "192.0.2.7", "cam1.lan",
// "*.cams.example.org". Every bad entry is reported.
func ParseDestinations(entries []string) (*Destinations, error) {
	d := &Destinations{}
	var errs []error
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("%q is not a network (CIDR such as 10.0.0.0/8)", e))
				continue
			}
			d.nets = append(d.nets, p.Masked())
		default:
			if a, err := netip.ParseAddr(e); err == nil {
				d.nets = append(d.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			name := strings.ToLower(strings.TrimSuffix(e, "."))
			if !validHostPattern(name) {
				errs = append(errs, fmt.Errorf("%q is not a network, an address or a host name", e))
				continue
			}
			d.hosts = append(d.hosts, name)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// validHostPattern accepts DNS names of letters, digits, '-' and '.', optionally
// starting with "*.".
func validHostPattern(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Empty reports whether no network or host is listed (the default policy).
func (d *Destinations) Empty() bool { return d == nil || len(d.nets) == 0 && len(d.hosts) == 0 }

// String lists the entries, for logs.
func (d *Destinations) String() string {
	if d.Empty() {
		return "any address except loopback, link-local, unspecified and multicast"
	}
	var parts []string
	for _, p := range d.nets {
		parts = append(parts, p.String())
	}
	return strings.Join(append(parts, d.hosts...), ",")
}

func (d *Destinations) hostListed(host string) bool {
	if d == nil {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range d.hosts {
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
			return true
		}
	}
	return false
}

// refusedByDefault names the kind of address ip is when sources may not reach it
// unless a listed network covers it, or returns "".
func refusedByDefault(ip netip.Addr) string {
	switch {
	case ip.IsLoopback(), ip.Is4() && ip.As4()[0] == 0: // 0.0.0.0/8 reaches this host on Linux
		return "loopback"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	return ""
}

// check says whether a connection to ip, reached through the URL host host (a name
// or an address literal), is allowed. The error wraps ErrDestinationRefused.
func (d *Destinations) check(host string, ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if d != nil {
		for _, p := range d.nets {
			if p.Contains(ip) {
				return nil
			}
		}
	}
	if kind := refusedByDefault(ip); kind != "" {
		return fmt.Errorf("%w: %s is a %s address (the server's allow-list, -rtsp-source-allow, must list its network)", ErrDestinationRefused, ip, kind)
	}
	if d.Empty() || d.hostListed(host) {
		return nil
	}
	return fmt.Errorf("%w: %s is not in the server's allow-list (-rtsp-source-allow)", ErrDestinationRefused, ip)
}

// CheckHost refuses a URL host that is an address the policy refuses; a host name
// passes here and is checked at each connection, on the address it resolves to.
// The error wraps ErrDestinationRefused.
func (d *Destinations) CheckHost(host string) error { return d.precheck(host) }

// precheck refuses, when a source is added, a URL host that is an address the
// policy refuses. Names are checked at each connection, on the address dialled.
func (d *Destinations) precheck(host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return d.check(host, ip)
	}
	return nil
}

// control is a net.Dialer Control function that checks the address about to be
// dialled, after name resolution: the check cannot be bypassed by a name that
// resolves to a refused address.
func (d *Destinations) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot read the dialled address %q", ErrDestinationRefused, address)
		}
		return d.check(host, ap.Addr())
	}
}
