package node_test

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// floodLine is one line of the flood: what rsync -v prints per file.
var floodLine = regexp.MustCompile(`^var/spool/cyrus/data/lab_example/domain/l/lab\.example/u/user\d{4}/\d+\. \(\d+ bytes\) sent \d+ received 35 bytes$`)

// FLOOD_BYTES=n with FLOOD_STEP=desc adds exactly n bytes of rsync-like lines
// to stdout, just before that step's first spinner frame, and changes nothing
// else: same steps, same exit code. n spans several of the script's 64 KiB
// writes, and its last line is cut to the byte.
func TestFlood_PrintsExactlyNBytesOfLogLinesBeforeTheStep(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	const step = "Restoring Cyrus spool files"
	base := run{variant: "bm4es", store: store, knobs: knobs(), stdin: "2\n", tz: "UTC"}.exec(t)
	if base.rc != 0 || !slices.Contains(steps(base.stdout), step) {
		t.Fatalf("run without flood: rc %d, steps %q", base.rc, steps(base.stdout))
	}
	frame := "\r" + step + " -"
	for _, n := range []int{1, 1000, 150001} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			res := run{variant: "bm4es", store: store, stdin: "2\n", tz: "UTC",
				knobs: knobs("FLOOD_STEP", step, "FLOOD_BYTES", strconv.Itoa(n))}.exec(t)
			if res.rc != 0 || !slices.Equal(steps(res.stdout), steps(base.stdout)) {
				t.Fatalf("rc %d, steps %q; want 0 and the same steps as without flood", res.rc, steps(res.stdout))
			}
			if got := len(res.stdout) - len(base.stdout); got != n {
				t.Fatalf("flood added %d bytes to stdout, want %d", got, n)
			}
			// The flood sits right before the step's first frame, on lines
			// of its own: the output without it is the output of the run
			// without the knob.
			at := strings.Index(base.stdout, frame)
			if at < 0 || !strings.HasPrefix(res.stdout[at+n:], frame) {
				t.Fatalf("the flood is not right before %q", frame)
			}
			if res.stdout[:at]+res.stdout[at+n:] != base.stdout {
				t.Fatal("the flood changed the output around it")
			}
			flood := res.stdout[at : at+n]
			if !strings.HasSuffix(flood, "\n") {
				t.Fatalf("the flood does not end a line: %q", flood[max(0, n-80):])
			}
			lines := strings.Split(strings.TrimSuffix(flood, "\n"), "\n")
			for i, l := range lines[:len(lines)-1] { // the last one may be cut
				if !floodLine.MatchString(l) {
					t.Fatalf("flood line %d is not a log line: %q", i, l)
				}
			}
			if n > 1 && !strings.HasPrefix(lines[0], "var/spool/cyrus/") {
				t.Errorf("first flood line %q", lines[0])
			}
		})
	}
}

// Without FLOOD_STEP, FLOOD_BYTES alone prints nothing more.
func TestFlood_NeedsAStep(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	base := run{variant: "bm4", store: store, knobs: knobs(), stdin: "2\n", tz: "UTC"}.exec(t)
	res := run{variant: "bm4", store: store, knobs: knobs("FLOOD_BYTES", "5000"), stdin: "2\n", tz: "UTC"}.exec(t)
	if res.rc != 0 || res.stdout != base.stdout {
		t.Fatalf("rc %d; FLOOD_BYTES without FLOOD_STEP changed stdout (%d bytes, want %d)", res.rc, len(res.stdout), len(base.stdout))
	}
}
