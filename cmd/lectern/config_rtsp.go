package main

import (
	"fmt"
	"net/url"

	"lectern/sfu/rtsp"
)

// checkRTSPSourceAllow checks one entry of -rtsp-source-allow: a network (CIDR), an
// address or a host name (optionally "*.domain").
func checkRTSPSourceAllow(v string) error {
	_, err := rtsp.ParseDestinations([]string{v})
	return err
}

// rtspSourceAllow is the parsed -rtsp-source-allow (checked by parseConfig).
func (c config) rtspSourceAllow() *rtsp.Destinations {
	d, err := rtsp.ParseDestinations(c.RTSPSourceAllow)
	if err != nil {
		return &rtsp.Destinations{} // unreachable: parseConfig refused it
	}
	return d
}

// checkRTSPSources validates the pull-source settings together: trainers may add
// sources only within an allow-list the admin wrote (a source makes the server
// connect wherever its URL says), and the sources configured at start must name
// hosts the policy admits.
func (c *config) checkRTSPSources() []error {
	var errs []error
	if c.RTSPSourceTrainers && len(c.RTSPSourceAllow) == 0 {
		errs = append(errs, fmt.Errorf("%s: needs %s (trainers may add sources only within the networks and hosts the admin lists)",
			settingName("rtsp-source-trainers"), settingName("rtsp-source-allow")))
	}
	d, err := rtsp.ParseDestinations(c.RTSPSourceAllow)
	if err != nil {
		return errs // reported by its row
	}
	for _, v := range c.RTSPSources {
		_, _, _, rawURL, err := parseRTSPSource(v)
		if err != nil {
			continue // reported by its row
		}
		u, err := url.Parse(rawURL)
		if err != nil {
			continue
		}
		if err := d.CheckHost(u.Hostname()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", settingName("rtsp-source"), u.Hostname(), err))
		}
	}
	return errs
}
