package tasks

import (
	"errors"

	"github.com/prapush/prapush/transport"
)

// checkSSHConnect fails when the node could not be reached, refused every
// authentication method, or presented an unknown or changed host key.
func checkSSHConnect(r *NodeResult) CheckResult {
	res := CheckResult{ID: CheckSSHConnect, Node: r.Node.Name}
	switch {
	case r.DialErr == nil:
		res.Status, res.Message = Pass, "connected to "+r.Node.Address
	case errors.Is(r.DialErr, transport.ErrPrivilege):
		res.Status, res.Message = Pass, "connected to "+r.Node.Address+" (root not obtained, see ssh.privilege)"
	case errors.Is(r.DialErr, transport.ErrHostKey):
		res.Status, res.Message = Fail, "host key: "+r.DialErr.Error()
	case errors.Is(r.DialErr, transport.ErrAuth):
		res.Status, res.Message = Fail, "authentication: "+r.DialErr.Error()
	case errors.Is(r.DialErr, transport.ErrUnreachable):
		res.Status, res.Message = Fail, "unreachable: "+r.DialErr.Error()
	default:
		res.Status, res.Message = Fail, r.DialErr.Error()
	}
	return res
}
