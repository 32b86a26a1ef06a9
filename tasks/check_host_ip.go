package tasks

import "slices"

// checkHostIP fails when the inventory ip is not one of the node's IPv4
// addresses: the backup knows the node by it.
func checkHostIP(e *nodeEnv) (Status, string) {
	ip := e.Node.IP.String()
	have := e.Facts.IPv4
	if len(have) == 0 {
		return Fail, "no IPv4 address found on the node, expected " + ip
	}
	if !slices.Contains(have, ip) {
		return Fail, ip + " is not among the node's addresses " + list(have)
	}
	return Pass, ip + " is one of " + list(have)
}
