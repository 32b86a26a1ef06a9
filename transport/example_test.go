package transport_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prapush/prapush/transport"
	"golang.org/x/crypto/ssh"
)

// How cmd wires a Target from ssh_config, keys and the agent (paths already
// expanded by cmd, which owns the environment). Compiled, not run.
func ExampleDial() {
	ctx := context.Background()
	res, err := transport.ResolveSSHConfig("/home/op/.ssh/config", "bm-core")
	if err != nil {
		fmt.Println(err) // ProxyCommand, Match: refused, not ignored
		return
	}
	signers, err := transport.LoadSigners([]string{"/home/op/.ssh/id_ed25519"}, true, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var agentSigners func() ([]ssh.Signer, error)
	if list, closer, err := transport.AgentSigners("/run/user/1000/ssh-agent.sock"); err == nil {
		defer closer.Close()
		agentSigners = list
	}
	t := transport.Target{
		Name:           "bm-core",
		Host:           res.HostName,
		Port:           res.Port,
		User:           res.User,
		Jumps:          res.Jumps,
		Auth:           []ssh.AuthMethod{transport.PublicKeyAuth(agentSigners, signers)},
		KnownHosts:     []string{"/home/op/.ssh/known_hosts"},
		HostKeyPolicy:  transport.Strict,
		ConnectTimeout: 10 * time.Second,
		Keepalive:      15 * time.Second,
	}
	conn, err := transport.Dial(ctx, t)
	switch {
	case errors.Is(err, transport.ErrHostKey):
		fmt.Println("exit 3:", err) // *HostKeyError says unknown/changed and where
		return
	case errors.Is(err, transport.ErrUnreachable), errors.Is(err, transport.ErrAuth):
		fmt.Println("exit 3:", err)
		return
	case err != nil:
		fmt.Println(err) // ctx's cause, or a bad Target
		return
	}
	defer conn.Close()
	_ = conn.Run(ctx, transport.Quote("test", "-d", "/var/backups/bluemind"), nil, nil, nil)
}
