// Package inventory turns a prapush TOML inventory into validated, immutable
// data. It knows nothing of SSH and never touches the network.
package inventory

import (
	"net/netip"
	"time"
)

// HostKeyPolicy says how a node's SSH host key is verified.
type HostKeyPolicy string

// The host key policies of the spec.
const (
	HostKeyStrict    HostKeyPolicy = "strict"
	HostKeyAcceptNew HostKeyPolicy = "accept-new"
	HostKeyPinned    HostKeyPolicy = "pinned"
)

// Become says how root is obtained on a node: "" (the SSH user is root) or "sudo".
type Become string

// The become methods of the spec.
const (
	BecomeNone Become = ""
	BecomeSudo Become = "sudo"
)

// Default values of the spec.
const (
	DefaultRestoreScript  = "/usr/share/bm-node/bm-pra-restore.py"
	DefaultPython         = "/usr/bin/python"
	DefaultUser           = "root"
	DefaultPort           = 22
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepalive      = 15 * time.Second
	DefaultSSHConfig      = "~/.ssh/config"
)

// Architecture is the [architecture] table: what every node must match.
type Architecture struct {
	Name            string
	ExternalURL     string
	BlueMindVersion string
	OS              string        // "" = not checked
	RestoreScript   string        // default DefaultRestoreScript
	Python          string        // default DefaultPython
	RTO             time.Duration // 0 = no objective
}

// SSH holds connection settings: the [ssh] defaults, or a node's effective
// settings once its overrides are applied. Paths are kept as written (a
// leading "~/" is expanded by the caller, which owns the environment).
type SSH struct {
	User           string
	Port           int
	IdentityFiles  []string // empty = agent, then the usual ~/.ssh/id_* files
	KnownHosts     []string // empty = ["~/.ssh/known_hosts"]
	HostKeyPolicy  HostKeyPolicy
	Jump           string // "" or "user@host:port" (comma-separated for several hops)
	SSHConfig      string // "" = ignore ssh_config
	Become         Become
	ConnectTimeout time.Duration
	Keepalive      time.Duration
}

// Node is one server of the architecture, with every default resolved.
type Node struct {
	Name          string
	IP            netip.Addr // the address the backup knows this node by
	Address       string     // where to connect; defaults to IP
	Core          bool
	Tags          []string
	Stage         int // resolved: non-core default 1, core alone after every other stage
	HostKey       string
	StepTimeouts  map[string]time.Duration
	SSH           SSH // effective settings (defaults + node overrides)
	RestoreScript string
	Python        string
	Line          int // line of this node's [[nodes]] header in the file
}

// Inventory is a validated inventory. It is not modified after Load.
type Inventory struct {
	Path         string
	SHA256       string // hex sha256 of the file's bytes
	Architecture Architecture
	SSH          SSH // the [ssh] defaults
	Nodes        []Node
}
