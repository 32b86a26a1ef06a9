package tasks

import "strconv"

// checkGenerationCommon (architecture) fails when no generation is seen
// with identical content by every node whose files were read.
func checkGenerationCommon(s *GenerationSummary, nodes int) (Status, string) {
	read := nodes - len(s.Unread)
	if read == 0 {
		return Skip, "no node's generation files could be read"
	}
	note := ""
	if len(s.Unread) > 0 {
		note = " (not read on " + list(s.Unread) + ")"
	}
	if len(s.Common) == 0 {
		return Fail, "no generation with identical content on all " + strconv.Itoa(read) + " node(s)" + note
	}
	ids := make([]string, len(s.Common))
	for i, c := range s.Common {
		ids[i] = strconv.Itoa(c.ID)
	}
	msg := strconv.Itoa(len(s.Common)) + " common generation(s): " + list(ids) + "; restorable: " + list(itoas(s.Restorable)) + note
	if len(s.Restorable) == 0 {
		msg = strconv.Itoa(len(s.Common)) + " common generation(s) (" + list(ids) + "), none restorable" + note
	}
	return Pass, msg
}
