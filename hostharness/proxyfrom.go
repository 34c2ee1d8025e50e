package main

import (
	"fmt"
	"net/netip"
)

// parseProxyFrom parses the --proxy-from values: CIDR prefixes, or bare
// IPs (a /32 or /128 of their own).
func parseProxyFrom(values []string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for _, v := range values {
		prefix, err := parseTrusted(v)
		if err != nil {
			return nil, fmt.Errorf("--proxy-from %q: want a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address", v)
		}
		prefixes = append(prefixes, prefix)
	}
	return prefixes, nil
}

// parseTrusted parses one --proxy-from value. Zones are refused: a
// prefix cannot hold one.
func parseTrusted(v string) (netip.Prefix, error) {
	if prefix, err := netip.ParsePrefix(v); err == nil {
		return prefix.Masked(), nil
	}
	addr, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	if addr.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%s: a zone cannot be trusted", v)
	}
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}
