package tasks

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// EventKind says what OutputParser recognised in a restore script's output.
type EventKind int

// The events of the restore script's output (domain §3.3, §3.4).
const (
	// EventMenu: the first menu display and its prompt (Menu, MenuComplete).
	EventMenu EventKind = iota + 1
	// EventPromptAgain: a prompt after the first one: the answer was refused
	// (or stdin hit EOF) and the script loops on its menu.
	EventPromptAgain
	// EventStepStart: a spinner frame of a step not seen before (Step).
	EventStepStart
	// EventStepEnd: "<desc> OK" or "<desc> FAIL (<rc>)" (Step, OK, RC).
	EventStepEnd
	// EventTagged: "This server is tagged as <t>" (Tag).
	EventTagged
	// EventHeader: "**** <X> ****" (Text).
	EventHeader
	// EventFalseSuccess: one of the messages after which the script exits 0
	// without restoring anything (Text).
	EventFalseSuccess
	// EventNotTagged: legacy "This server is not tagget as <t>" (Tag).
	EventNotTagged
)

// Event is one thing recognised in the output.
type Event struct {
	Kind         EventKind
	Step         string
	OK           bool
	RC           int
	Tag          string
	Text         string
	Menu         []MenuLine
	MenuComplete bool
	// End is, for EventMenu, the offset in the output just after the
	// prompt: output beyond it (other than blanks) proves an answer.
	End int64
}

// falseSuccesses are the messages after which the script exits 0 having
// restored nothing (domain §3.5).
var falseSuccesses = []string{
	"No backup generation files found",
	"No BlueMind backup data found",
}

const (
	// maxSegment bounds the bytes kept of one output segment (between two
	// \r or \n): a step line is short; anything longer is noise whose start
	// is enough to classify it.
	maxSegment = 4096
	// maxMenu bounds the bytes kept while waiting for the first prompt.
	maxMenu = 1 << 20
	// promptWindow is how many bytes of earlier output are kept to find a
	// prompt split across two reads (the prompt is 50 bytes or so).
	promptWindow = 96
)

var failRe = regexp.MustCompile(`^(.*) FAIL \((-?[0-9]+)\)$`)

// OutputParser parses the restore script's stdout+stderr incrementally: feed
// it the bytes as they arrive, cut anywhere (a spinner frame may be split
// across reads); memory stays bounded whatever the output's length.
// It is not safe for concurrent use.
type OutputParser struct {
	off        int64  // bytes fed so far
	window     []byte // the last bytes fed, to find prompts across reads
	prompts    int    // prompts seen
	lastPrompt int64  // end offset of the last prompt counted
	menu       []byte // output up to the first prompt
	menuDone   bool
	seg        []byte
	segCut     bool
	active     string // the step whose spinner runs
}

// Feed parses b and returns what it recognised, in order.
func (p *OutputParser) Feed(b []byte) []Event {
	var evs []Event
	if !p.menuDone {
		if room := maxMenu - len(p.menu); room > 0 {
			p.menu = append(p.menu, b[:min(len(b), room)]...)
		}
	}
	// Prompts: found on the raw bytes (the legacy prompt ends without a
	// newline), each counted once even when split across two reads, and
	// reported at their place in the stream, so that however the output is
	// cut the events come in the same order.
	start := p.off - int64(len(p.window))
	buf := append(slices.Clip(p.window), b...)
	pos := 0
	for _, loc := range promptRe.FindAllIndex(buf, -1) {
		end := start + int64(loc[1])
		if end <= p.lastPrompt {
			continue
		}
		p.lastPrompt = end
		rel := int(end - p.off)
		evs = p.segments(evs, b[pos:rel])
		pos = rel
		p.prompts++
		if p.prompts == 1 {
			p.menuDone = true
			entries, _, complete := ParseMenu(p.menu)
			p.menu = nil
			evs = append(evs, Event{Kind: EventMenu, Menu: entries, MenuComplete: complete, End: end})
			continue
		}
		evs = append(evs, Event{Kind: EventPromptAgain})
	}
	evs = p.segments(evs, b[pos:])
	if len(buf) > promptWindow {
		buf = buf[len(buf)-promptWindow:]
	}
	p.window = append(p.window[:0], buf...)
	p.off += int64(len(b))
	return evs
}

// segments cuts b at each \r and \n and classifies the segments ended.
func (p *OutputParser) segments(evs []Event, b []byte) []Event {
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			p.add(b)
			break
		}
		p.add(b[:i])
		evs = p.segment(evs, b[i])
		b = b[i+1:]
	}
	return evs
}

func (p *OutputParser) add(b []byte) {
	if room := maxSegment - len(p.seg); room > 0 {
		p.seg = append(p.seg, b[:min(len(b), room)]...)
	}
	if len(p.seg) >= maxSegment {
		p.segCut = true
	}
}

// Prompts returns how many prompts the output showed so far.
func (p *OutputParser) Prompts() int { return p.prompts }

// segment classifies the segment that term (\r or \n) just ended.
func (p *OutputParser) segment(evs []Event, term byte) []Event {
	s := string(p.seg)
	cut := p.segCut
	p.seg, p.segCut = p.seg[:0], false
	if s == "" || cut {
		return evs
	}
	for _, fs := range falseSuccesses {
		if strings.Contains(s, fs) {
			return append(evs, Event{Kind: EventFalseSuccess, Text: s})
		}
	}
	// Menu lines ("...\tstatus: OK") are not steps: a step description
	// never holds a tab.
	if strings.ContainsRune(s, '\t') || p.prompts == 0 {
		return evs
	}
	switch {
	case strings.HasPrefix(s, "This server is tagged as "):
		return append(evs, Event{Kind: EventTagged, Tag: strings.TrimPrefix(s, "This server is tagged as ")})
	case strings.HasPrefix(s, "This server is not tagget as "):
		return append(evs, Event{Kind: EventNotTagged, Tag: strings.TrimPrefix(s, "This server is not tagget as ")})
	case strings.HasPrefix(s, "**** ") && strings.HasSuffix(s, " ****") && len(s) > 10:
		return append(evs, Event{Kind: EventHeader, Text: s[5 : len(s)-5]})
	}
	if term == '\n' {
		if desc, ok := strings.CutSuffix(s, " OK"); ok && desc != "" {
			return p.end(evs, Event{Kind: EventStepEnd, Step: desc, OK: true})
		}
		// Most lines of a chatty script are neither: test the cheap
		// markers before the regular expression (a 1 GiB log was parsed at
		// 23 MB/s, one CPU busy, with the regexp on every line).
		if !strings.HasSuffix(s, ")") || !strings.Contains(s, " FAIL (") {
			return evs
		}
		if m := failRe.FindStringSubmatch(s); m != nil && m[1] != "" {
			rc, _ := strconv.Atoi(m[2])
			return p.end(evs, Event{Kind: EventStepEnd, Step: m[1], RC: rc})
		}
		return evs
	}
	// A spinner frame "<desc> <c>", ended by the \r of the next frame.
	if n := len(s); n >= 3 && s[n-2] == ' ' && strings.IndexByte(`-\|/`, s[n-1]) >= 0 {
		desc := s[:n-2]
		if desc != p.active {
			p.active = desc
			evs = append(evs, Event{Kind: EventStepStart, Step: desc})
		}
	}
	return evs
}

func (p *OutputParser) end(evs []Event, e Event) []Event {
	if p.active != e.Step {
		evs = append(evs, Event{Kind: EventStepStart, Step: e.Step})
	}
	p.active = ""
	return append(evs, e)
}

// Partial returns the bytes received since the last \r or \n: the spinner
// frame being drawn, or the legacy prompt that ends without a newline.
func (p *OutputParser) Partial() string { return string(p.seg) }
