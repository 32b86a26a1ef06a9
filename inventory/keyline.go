package inventory

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml records where each key is defined but does not export it
// (github.com/BurntSushi/toml/issues/462), and it keys that record by dotted
// name, so the keys of the second [[nodes]] overwrite those of the first. The
// scanner below recovers the line of every key definition itself. It only runs
// on documents the toml package has already accepted, and it emits key events
// in the order the toml package lists them in MetaData.Keys, so the two lists
// can be zipped: the toml package names the keys, the scanner dates them.

// eventKind says what defines a key in the document.
type eventKind int

const (
	evTable      eventKind = iota // [a.b]
	evArrayTable                  // [[a.b]]
	evKeyValue                    // a.b = v (top level or inside an inline table)
	evArrayElem                   // an element of an inline array: not a key
)

// event is one key definition (or inline array element) and its line.
type event struct {
	kind  eventKind
	line  int
	owner int // evArrayElem: index among key events of the key whose array holds it
}

type keyScanner struct {
	s          string
	i          int
	lineStarts []int
	events     []event
	nkeys      int // key events emitted so far (evArrayElem excluded)
}

// scanKeyLines returns the events of a TOML document the toml package parsed.
func scanKeyLines(src string) []event {
	// Skip a byte order mark the way the toml package does; it sits on line 1,
	// so no line number moves.
	for _, bom := range []string{"\xff\xfe", "\xfe\xff", "\xef\xbb\xbf"} {
		if strings.HasPrefix(src, bom) {
			src = src[len(bom):]
			break
		}
	}
	sc := &keyScanner{s: src, lineStarts: []int{0}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			sc.lineStarts = append(sc.lineStarts, i+1)
		}
	}
	sc.document()
	return sc.events
}

func (sc *keyScanner) lineAt(pos int) int {
	return sort.Search(len(sc.lineStarts), func(k int) bool { return sc.lineStarts[k] > pos })
}

func (sc *keyScanner) eof() bool { return sc.i >= len(sc.s) }

func (sc *keyScanner) emit(kind eventKind, pos, owner int) int {
	sc.events = append(sc.events, event{kind: kind, line: sc.lineAt(pos), owner: owner})
	if kind == evArrayElem {
		return -1
	}
	sc.nkeys++
	return sc.nkeys - 1
}

// skipBlank skips spaces and tabs, and also newlines and comments when nl is set.
func (sc *keyScanner) skipBlank(nl bool) {
	for !sc.eof() {
		switch c := sc.s[sc.i]; {
		case c == ' ' || c == '\t':
			sc.i++
		case nl && (c == '\n' || c == '\r'):
			sc.i++
		case nl && c == '#':
			sc.skipLine()
		default:
			return
		}
	}
}

func (sc *keyScanner) skipLine() {
	if j := strings.IndexByte(sc.s[sc.i:], '\n'); j >= 0 {
		sc.i += j + 1
	} else {
		sc.i = len(sc.s)
	}
}

func (sc *keyScanner) document() {
	for {
		sc.skipBlank(true)
		if sc.eof() {
			return
		}
		start := sc.i
		if sc.s[sc.i] == '[' {
			kind, closing := evTable, "]"
			if strings.HasPrefix(sc.s[sc.i:], "[[") {
				kind, closing = evArrayTable, "]]"
				sc.i++
			}
			sc.i++
			sc.keyParts()
			if strings.HasPrefix(sc.s[sc.i:], closing) {
				sc.i += len(closing)
			}
			sc.emit(kind, start, 0)
		} else {
			sc.keyValue()
		}
		// What may follow on the line is a comment or the time half of a
		// "1979-05-27 07:32:00" datetime: neither defines a key.
		sc.skipLine()
	}
}

// keyParts skips a possibly dotted, possibly quoted key.
func (sc *keyScanner) keyParts() {
	for !sc.eof() {
		sc.skipBlank(false)
		if sc.eof() {
			return
		}
		switch c := sc.s[sc.i]; {
		case c == '"' || c == '\'':
			sc.skipString()
		case isBareKeyByte(c):
			for !sc.eof() && isBareKeyByte(sc.s[sc.i]) {
				sc.i++
			}
		default:
			return
		}
		sc.skipBlank(false)
		if sc.eof() || sc.s[sc.i] != '.' {
			return
		}
		sc.i++
	}
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (sc *keyScanner) keyValue() {
	start := sc.i
	sc.keyParts()
	if !sc.eof() && sc.s[sc.i] == '=' {
		sc.i++
	}
	idx := sc.emit(evKeyValue, start, 0)
	sc.value(idx, true)
}

// value skips a value. The elements of an array directly under key number
// owner are emitted (top); those of nested arrays are not, as the toml package
// does not index them either.
func (sc *keyScanner) value(owner int, top bool) {
	sc.skipBlank(false)
	if sc.eof() {
		return
	}
	switch sc.s[sc.i] {
	case '"', '\'':
		sc.skipString()
	case '[':
		sc.array(owner, top)
	case '{':
		sc.inlineTable()
	default:
		sc.scalar()
	}
}

// scalar skips a number, boolean or date: none contains a delimiter.
func (sc *keyScanner) scalar() {
	start := sc.i
	for !sc.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(sc.s[sc.i])) {
		sc.i++
	}
	if sc.i == start && !sc.eof() {
		sc.i++ // never stall on a byte a valid document cannot hold here
	}
}

func (sc *keyScanner) array(owner int, top bool) {
	sc.i++
	for {
		sc.skipBlank(true)
		if sc.eof() {
			return
		}
		switch sc.s[sc.i] {
		case ']':
			sc.i++
			return
		case ',':
			sc.i++
		default:
			if top {
				sc.emit(evArrayElem, sc.i, owner)
			}
			sc.value(owner, false)
			// Skip the time half of a datetime element.
			for {
				sc.skipBlank(false)
				if sc.eof() || strings.ContainsRune(",]\n\r#", rune(sc.s[sc.i])) {
					break
				}
				sc.scalar()
			}
		}
	}
}

func (sc *keyScanner) inlineTable() {
	sc.i++
	for {
		sc.skipBlank(true)
		if sc.eof() {
			return
		}
		switch c := sc.s[sc.i]; {
		case c == '}':
			sc.i++
			return
		case c == ',':
			sc.i++
		case c == '"' || c == '\'' || isBareKeyByte(c):
			sc.keyValue()
			// Skip the time half of a datetime, up to the next separator.
			for {
				sc.skipBlank(false)
				if sc.eof() || strings.ContainsRune(",}\n\r#", rune(sc.s[sc.i])) {
					break
				}
				sc.scalar()
			}
		default:
			sc.i++
		}
	}
}

// skipString skips a basic, literal or multi-line string.
func (sc *keyScanner) skipString() {
	q := sc.s[sc.i]
	escapes := q == '"'
	if strings.HasPrefix(sc.s[sc.i:], strings.Repeat(string(q), 3)) {
		sc.i += 3
		for !sc.eof() {
			c := sc.s[sc.i]
			if escapes && c == '\\' {
				sc.i += 2
				continue
			}
			if c == q && strings.HasPrefix(sc.s[sc.i:], strings.Repeat(string(q), 3)) {
				sc.i += 3
				// Up to two quotes right before the delimiter belong to the content.
				for n := 0; n < 2 && !sc.eof() && sc.s[sc.i] == q; n++ {
					sc.i++
				}
				return
			}
			sc.i++
		}
		sc.i = min(sc.i, len(sc.s))
		return
	}
	sc.i++
	for !sc.eof() {
		c := sc.s[sc.i]
		switch {
		case escapes && c == '\\':
			sc.i += 2
		case c == q:
			sc.i++
			return
		case c == '\n':
			return
		default:
			sc.i++
		}
	}
	sc.i = min(sc.i, len(sc.s))
}

// keyLines maps the canonical path of every key of a parsed document (see
// pathOf) to the line that defines it. Array-of-tables elements are indexed:
// "nodes[1].port". It returns nil when the scanner and the toml package
// disagree, which the fuzz target guards against.
func keyLines(src string, md toml.MetaData) map[string]int {
	keys := md.Keys()
	events := scanKeyLines(src)
	var nkeys int
	for _, ev := range events {
		if ev.kind != evArrayElem {
			nkeys++
		}
	}
	if nkeys != len(keys) {
		return nil
	}

	isArray := map[string]bool{}
	count := map[string]int{}
	canon := func(parts []string) string {
		var cur string
		for _, p := range parts {
			cur = joinPath(cur, p)
			if isArray[cur] {
				cur += "[" + strconv.Itoa(count[cur]-1) + "]"
			}
		}
		return cur
	}
	lines := make(map[string]int, len(keys))
	paths := make([]string, 0, len(keys))
	k := 0
	for _, ev := range events {
		switch ev.kind {
		case evArrayElem:
			name := paths[ev.owner]
			isArray[name] = true
			count[name]++
			lines[name+"["+strconv.Itoa(count[name]-1)+"]"] = ev.line
		case evArrayTable:
			key := keys[k]
			for n := 1; n < len(key); n++ {
				if p := canon(key[:n]); lines[p] == 0 {
					lines[p] = ev.line
				}
			}
			name := joinPath(canon(key[:len(key)-1]), key[len(key)-1])
			isArray[name] = true
			count[name]++
			paths = append(paths, name)
			lines[canon(key)] = ev.line
			k++
		default:
			// Dotted keys and headers create their parent tables implicitly:
			// those are located where they first appear.
			key := keys[k]
			for n := 1; n <= len(key); n++ {
				if p := canon(key[:n]); lines[p] == 0 {
					lines[p] = ev.line
				}
			}
			paths = append(paths, canon(key))
			k++
		}
	}
	return lines
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinPath appends one key part to a canonical path, quoting it unless bare.
func joinPath(path, part string) string {
	if !bareKey.MatchString(part) {
		part = strconv.Quote(part)
	}
	if path == "" {
		return part
	}
	return path + "." + part
}

// indexPath names element i of the array at path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
