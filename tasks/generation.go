package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Generation is one generation-<id>.json file as the restore script and
// prapush read it (domain §1.1). Only the fields prapush uses are kept.
type Generation struct {
	ID             int
	ProtectionTime int64 // epoch milliseconds
	Major          string
	Minor          string
	Release        string
	DisplayName    string
	WithWarnings   bool
	WithErrors     bool
	Parts          []Part
}

// Part is one part of a generation: the backup of one tag of one server.
type Part struct {
	ID           int
	GenerationID int
	Begin        int64  // epoch ms
	End          *int64 // nil while the part runs (or when a backup crashed)
	SizeMB       int64
	Tag          string
	Server       string // server uid, not an IP
	WithWarnings bool
	WithErrors   bool
	Valid        string // "VALID", "INVALID", "UNKNOWN"
	Datatype     string
}

// clone returns a copy of g that shares nothing with it (nil for nil).
func (g *Generation) clone() *Generation {
	if g == nil {
		return nil
	}
	c := *g
	c.Parts = slices.Clone(g.Parts)
	for i := range c.Parts {
		if e := c.Parts[i].End; e != nil {
			v := *e
			c.Parts[i].End = &v
		}
	}
	return &c
}

// Finished reports whether the part is VALID and has an end time: what a
// restorable generation needs from each of its parts.
func (p Part) Finished() bool { return p.Valid == "VALID" && p.End != nil }

// GenerationKind says how the restore script treats one generation file.
type GenerationKind int

const (
	// GenerationOK: the script loads the file and lists it in its menu.
	GenerationOK GenerationKind = iota
	// GenerationIgnored: the file is not JSON; the script prints
	// "Ignoring file" and skips it (json.load raised ValueError).
	GenerationIgnored
	// GenerationCrash: the file is JSON but lacks what the script indexes
	// (protectionTime, withErrors, blueMind.displayName, or is not an
	// object): the script dies with a traceback before its menu.
	GenerationCrash
)

// String returns a word for messages.
func (k GenerationKind) String() string {
	switch k {
	case GenerationOK:
		return "ok"
	case GenerationIgnored:
		return "ignored"
	case GenerationCrash:
		return "crash"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseGeneration parses the bytes of a generation file the way the
// script's Python 2 json.load and its key lookups would, and says which
// kind of file it is. The error explains an Ignored or Crash kind.
//
// Where Go differs from Python 2's json module: Python also accepts the
// bare tokens NaN, Infinity and -Infinity (Go rejects them, so such a file
// is reported Ignored although the script would load it; BlueMind never
// writes them). Invalid UTF-8 is rejected as Python 2 does (its decoder
// raises a ValueError subclass) whereas Go's decoder would replace it.
func ParseGeneration(b []byte) (*Generation, GenerationKind, error) {
	if !utf8.Valid(b) {
		return nil, GenerationIgnored, fmt.Errorf("parse generation: invalid UTF-8")
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, GenerationIgnored, fmt.Errorf("parse generation: %w", err)
	}
	// Python's json.load rejects trailing data other than whitespace
	// ("Extra data"), which Decode alone would not notice.
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return nil, GenerationIgnored, fmt.Errorf("parse generation: extra data after the JSON value")
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, GenerationCrash, fmt.Errorf("parse generation: not a JSON object")
	}
	g := &Generation{}
	pt, ok := obj["protectionTime"]
	if !ok {
		return nil, GenerationCrash, fmt.Errorf("parse generation: no protectionTime")
	}
	n, ok := pt.(json.Number)
	if !ok {
		return nil, GenerationCrash, fmt.Errorf("parse generation: protectionTime is not a number")
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e17 {
		return nil, GenerationCrash, fmt.Errorf("parse generation: protectionTime %s out of range", n)
	}
	if i, err := n.Int64(); err == nil {
		g.ProtectionTime = i
	} else {
		g.ProtectionTime = int64(f)
	}
	we, ok := obj["withErrors"]
	if !ok {
		return nil, GenerationCrash, fmt.Errorf("parse generation: no withErrors")
	}
	g.WithErrors = truthy(we)
	// withWarnings is read only when withErrors is false (the script's
	// if/elif), so its absence crashes only then.
	ww, ok := obj["withWarnings"]
	if !ok && !g.WithErrors {
		return nil, GenerationCrash, fmt.Errorf("parse generation: no withWarnings")
	}
	g.WithWarnings = truthy(ww)
	bm, ok := obj["blueMind"].(map[string]any)
	if !ok {
		return nil, GenerationCrash, fmt.Errorf("parse generation: no blueMind object")
	}
	dn, ok := bm["displayName"]
	if !ok {
		return nil, GenerationCrash, fmt.Errorf("parse generation: no blueMind.displayName")
	}
	g.DisplayName = pyStr(dn)
	g.Major, _ = bm["major"].(string)
	g.Minor, _ = bm["minor"].(string)
	g.Release, _ = bm["release"].(string)
	g.ID = int(num(obj["id"]))
	if parts, ok := obj["parts"].([]any); ok {
		for _, p := range parts {
			m, ok := p.(map[string]any)
			if !ok {
				continue
			}
			part := Part{
				ID:           int(num(m["id"])),
				GenerationID: int(num(m["generationId"])),
				Begin:        num(m["begin"]),
				SizeMB:       num(m["size"]),
				WithWarnings: truthy(m["withWarnings"]),
				WithErrors:   truthy(m["withErrors"]),
			}
			part.Tag, _ = m["tag"].(string)
			part.Server, _ = m["server"].(string)
			part.Valid, _ = m["valid"].(string)
			part.Datatype, _ = m["datatype"].(string)
			if e, ok := m["end"].(json.Number); ok {
				v := num(e)
				part.End = &v
			}
			g.Parts = append(g.Parts, part)
		}
	}
	return g, GenerationOK, nil
}

// num converts a JSON number to int64, 0 for anything else.
func num(v any) int64 {
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	f, _ := n.Float64()
	return int64(f)
}

// truthy is Python's truth value of a decoded JSON value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case json.Number:
		f, _ := x.Float64()
		return f != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// pyStr renders a JSON value as Python 2's print would for the menu column.
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// StatusText is the script's status column: "Ending with errors" when the
// generation-level withErrors is true, else "Ending with warnings" when
// withWarnings is, else "OK".
func (g *Generation) StatusText() string {
	switch {
	case g.WithErrors:
		return "Ending with errors"
	case g.WithWarnings:
		return "Ending with warnings"
	}
	return "OK"
}

// Time is the protection time, with the script's integer division to
// seconds (the menu has second resolution).
func (g *Generation) Time() time.Time {
	s := g.ProtectionTime / 1000
	if g.ProtectionTime < 0 && g.ProtectionTime%1000 != 0 {
		s-- // Python's // floors
	}
	return time.Unix(s, 0)
}

// TotalSizeMB is the sum of the sizes of the parts.
func (g *Generation) TotalSizeMB() int64 {
	var t int64
	for _, p := range g.Parts {
		t += p.SizeMB
	}
	return t
}

// Restorable reports whether every part is VALID and finished and the
// generation has at least one part.
func (g *Generation) Restorable() bool {
	if len(g.Parts) == 0 {
		return false
	}
	for _, p := range g.Parts {
		if !p.Finished() {
			return false
		}
	}
	return true
}

// HasTag reports whether a part has the tag.
func (g *Generation) HasTag(tag string) bool {
	for _, p := range g.Parts {
		if p.Tag == tag {
			return true
		}
	}
	return false
}

var releaseRe = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// IsRelease reports whether s is an x.y.z release number.
func IsRelease(s string) bool { return releaseRe.MatchString(s) }

var genNameRe = regexp.MustCompile(`^generation-(.*)\.json$`)

// GenerationFileID returns the id in a "generation-<id>.json" file name;
// ok is false when the name has no integer id.
func GenerationFileID(name string) (id int, ok bool) {
	m := genNameRe.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	id, err := strconv.Atoi(m[1])
	if err != nil || id < 0 {
		return 0, false
	}
	return id, true
}
