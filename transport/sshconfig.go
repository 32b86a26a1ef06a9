package transport

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// Resolved is what an ssh_config file says about one Host alias. Empty
// fields (zero Port) mean the file does not set them.
type Resolved struct {
	HostName      string
	User          string
	Port          int
	IdentityFiles []string // as written: "~" and %-tokens are left to the caller
	Jumps         []Hop    // ProxyJump, first hop first; nil for none
}

// ResolveSSHConfig reads the OpenSSH client configuration at path and
// returns the settings prapush honours for alias: HostName, User, Port,
// IdentityFile and ProxyJump (each jump host itself resolved through the
// file). Settings prapush cannot honour are errors rather than silently
// ignored: a ProxyCommand for the alias, a Match block matching it, or a
// Match criterion the parser does not know. A missing file resolves to
// nothing.
func ResolveSSHConfig(path, alias string) (Resolved, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return Resolved{}, nil
	}
	if err != nil {
		return Resolved{}, fmt.Errorf("read ssh_config: %w", err)
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return Resolved{}, fmt.Errorf("read ssh_config %s: %w", path, err)
	}
	r, err := resolveAlias(cfg, path, alias)
	if err != nil {
		return Resolved{}, err
	}
	pj, err := cfg.Get(alias, "ProxyJump")
	if err != nil {
		return Resolved{}, fmt.Errorf("read ssh_config %s: %w", path, err)
	}
	if pj != "" && !strings.EqualFold(pj, "none") {
		for _, spec := range strings.Split(pj, ",") {
			h, err := parseJump(strings.TrimSpace(spec))
			if err != nil {
				return Resolved{}, fmt.Errorf("read ssh_config %s: host %s: %w", path, alias, err)
			}
			// A jump names a host the way a command line does: it
			// goes through the file too (HostName, User, Port only).
			jr, err := resolveAlias(cfg, path, h.Host)
			if err != nil {
				return Resolved{}, err
			}
			if jr.HostName != "" {
				h.Host = jr.HostName
			}
			if h.User == "" {
				h.User = jr.User
			}
			if h.Port == 0 {
				h.Port = jr.Port
			}
			r.Jumps = append(r.Jumps, h)
		}
	}
	return r, nil
}

func resolveAlias(cfg *ssh_config.Config, path, alias string) (Resolved, error) {
	for _, h := range cfg.Hosts {
		// ssh_config evaluates "Match host/all" like a Host block, but
		// OpenSSH matches them after HostName substitution and in a
		// second pass: the result could differ, so refuse instead.
		// The parser keeps no exported flag; its String form starts
		// with the keyword.
		if h.Matches(alias) && strings.HasPrefix(strings.TrimSpace(h.String()), "Match") {
			return Resolved{}, fmt.Errorf("read ssh_config %s: a Match block applies to %s; prapush does not evaluate Match, use a Host block", path, alias)
		}
	}
	get := func(key string) (string, error) {
		v, err := cfg.Get(alias, key)
		if err != nil {
			return "", fmt.Errorf("read ssh_config %s: %w", path, err)
		}
		return v, nil
	}
	var r Resolved
	var err error
	if pc, err := get("ProxyCommand"); err != nil {
		return r, err
	} else if pc != "" && !strings.EqualFold(pc, "none") {
		return r, fmt.Errorf("read ssh_config %s: host %s uses ProxyCommand, which prapush does not run; use ProxyJump", path, alias)
	}
	if r.HostName, err = get("HostName"); err != nil {
		return r, err
	}
	if r.User, err = get("User"); err != nil {
		return r, err
	}
	port, err := get("Port")
	if err != nil {
		return r, err
	}
	if port != "" {
		if r.Port, err = strconv.Atoi(port); err != nil || r.Port <= 0 || r.Port > 65535 {
			return r, fmt.Errorf("read ssh_config %s: host %s: bad Port %q", path, alias, port)
		}
	}
	ids, err := cfg.GetAll(alias, "IdentityFile")
	if err != nil {
		return r, fmt.Errorf("read ssh_config %s: %w", path, err)
	}
	r.IdentityFiles = ids
	return r, nil
}

// parseJump parses one ProxyJump element: [user@]host[:port] or
// ssh://[user@]host[:port].
func parseJump(s string) (Hop, error) {
	if s == "" {
		return Hop{}, fmt.Errorf("empty ProxyJump element")
	}
	if strings.HasPrefix(s, "ssh://") {
		u, err := url.Parse(s)
		if err != nil {
			return Hop{}, fmt.Errorf("bad ProxyJump %q: %w", s, err)
		}
		h := Hop{Host: u.Hostname(), User: u.User.Username()}
		if p := u.Port(); p != "" {
			if h.Port, err = strconv.Atoi(p); err != nil {
				return Hop{}, fmt.Errorf("bad ProxyJump port in %q", s)
			}
		}
		return h, nil
	}
	var h Hop
	if i := strings.LastIndex(s, "@"); i >= 0 {
		h.User, s = s[:i], s[i+1:]
	}
	h.Host = s
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			return Hop{}, fmt.Errorf("bad ProxyJump port in %q", s)
		}
		h.Host, h.Port = host, p
	}
	if h.Host == "" {
		return Hop{}, fmt.Errorf("bad ProxyJump %q", s)
	}
	return h, nil
}

// ParseJump parses a jump specification as the inventory's `jump` key and
// ProxyJump write it: comma-separated [user@]host[:port] elements.
func ParseJump(spec string) ([]Hop, error) {
	var hops []Hop
	for _, s := range strings.Split(spec, ",") {
		h, err := parseJump(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		hops = append(hops, h)
	}
	return hops, nil
}
