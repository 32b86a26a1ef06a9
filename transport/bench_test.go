package transport_test

import (
	"testing"

	"github.com/prapush/prapush/transport"
	"github.com/prapush/prapush/transport/transporttest"
)

func sshdTarget(b *testing.B) transport.Target {
	d := transporttest.StartSSHD(b, transporttest.SSHDOptions{IP: "127.0.0.2"})
	return transport.Target{
		Host: d.Host, Port: d.Port, Auth: auth(d.ClientSigner),
		HostKeyPolicy: transport.Pinned, PinnedKey: transport.Fingerprint(d.HostKey),
	}
}

// One full connection (TCP, handshake, auth) to a real sshd.
func BenchmarkDial_RealSSHD(b *testing.B) {
	tg := sshdTarget(b)
	for b.Loop() {
		c, err := transport.Dial(b.Context(), tg)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// One command on an open connection: the cost of a session.
func BenchmarkRun_RealSSHD(b *testing.B) {
	c, err := transport.Dial(b.Context(), sshdTarget(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if err := c.Run(b.Context(), "true", nil, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// One small file over the connection's reused SFTP client.
func BenchmarkReadFile_RealSSHD(b *testing.B) {
	c, err := transport.Dial(b.Context(), sshdTarget(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if _, err := c.ReadFile(b.Context(), "/etc/hostname"); err != nil {
			b.Fatal(err)
		}
	}
}
