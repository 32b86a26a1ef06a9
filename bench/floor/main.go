// Command floor is the benchmark floor for `prapush verify`: the least a
// program built on x/crypto/ssh can do against N nodes — dial all of them in
// parallel (host key pinned from known_hosts, one key), run one command on
// each, close. `make bench` runs it side by side with prapush.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func main() {
	key := flag.String("key", "", "private key file")
	known := flag.String("known-hosts", "", "known_hosts file")
	addrs := flag.String("addrs", "", "comma-separated host:port list")
	command := flag.String("cmd", "true", "command to run on every node")
	flag.Parse()
	pem, err := os.ReadFile(*key)
	if err != nil {
		fail(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		fail(err)
	}
	cb, err := knownhosts.New(*known)
	if err != nil {
		fail(err)
	}
	cfg := &ssh.ClientConfig{
		User:              "root",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           10 * time.Second,
	}
	list := strings.Split(*addrs, ",")
	var wg sync.WaitGroup
	errs := make([]error, len(list))
	for i, addr := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runOne(cfg, addr, *command)
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "%s: %v\n", list[i], err)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func runOne(cfg *ssh.ClientConfig, addr, command string) error {
	c, err := ssh.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	var out bytes.Buffer
	s.Stdout = &out
	return s.Run(command)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(2)
}
