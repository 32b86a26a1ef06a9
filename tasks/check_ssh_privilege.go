package tasks

import (
	"errors"
	"strconv"

	"github.com/prapush/prapush/transport"
)

// checkSSHPrivilege fails when commands do not run as root: sudo asks for a
// password (the dial says so), or the session's `id -u` is not 0.
func checkSSHPrivilege(r *NodeResult) CheckResult {
	res := CheckResult{ID: CheckSSHPrivilege, Node: r.Node.Name}
	switch {
	case errors.Is(r.DialErr, transport.ErrPrivilege):
		res.Status, res.Message = Fail, r.DialErr.Error()+" (expected root, or become = \"sudo\" without a password prompt)"
	case r.DialErr != nil:
		res.Status, res.Message = Skip, "not connected"
	case r.Facts == nil && r.FactsErr != nil:
		res.Status, res.Message = Fail, "cannot run commands: "+r.FactsErr.Error()
	case r.Facts == nil || r.Facts.UID < 0:
		res.Status, res.Message = Fail, "id -u printed no uid, expected 0"
	case r.Facts.UID != 0:
		res.Status, res.Message = Fail, "commands run as uid "+strconv.Itoa(r.Facts.UID)+", expected 0 (root, or become = \"sudo\")"
	default:
		res.Status, res.Message = Pass, "commands run as root (uid 0)"
	}
	return res
}
