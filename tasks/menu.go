package tasks

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// The restore script families of domain §3.1.
const (
	FamilyLegacy = "legacy"
	FamilyBM4    = "bm4"
	FamilyBM4ES  = "bm4-es"
	FamilyBM5    = "bm5"
)

// GenFile is one generation-*.json file as one node sees it.
type GenFile struct {
	Name    string // base name, e.g. "generation-312.json"
	Size    int64
	SHA256  string // hex
	Content []byte
	Gen     *Generation    // nil unless Kind is GenerationOK
	Kind    GenerationKind // how the script treats it
	Err     error          // why it is Ignored or a Crash
}

// MenuEntry is one line of the script's menu.
type MenuEntry struct {
	Index int    // 1-based, what the operator types
	File  string // the file whose generation the script keeps for that line
	Gen   *Generation
	// Ambiguous lists the other files with the same protectionTime: the
	// script keeps the last one it reads, in an order prapush cannot know.
	Ambiguous []string
}

// ErrMenuCrash means a generation file makes the script crash before it
// shows its menu.
var ErrMenuCrash = errors.New("a generation file crashes the restore script")

// BuildMenu models the script's menu from the generation files of one node:
// files that load as JSON, kept in a dict keyed by protectionTime (a later
// file replaces an earlier one), keys sorted ascending, index = position+1.
// It returns ErrMenuCrash (wrapped, naming the file) when a file would crash
// the script. Files are taken in the order given; when several share a
// protectionTime the entry names the last one and lists the others in
// Ambiguous.
func BuildMenu(files []GenFile) ([]MenuEntry, error) {
	byTime := map[int64]*MenuEntry{}
	for _, f := range files {
		switch f.Kind {
		case GenerationCrash:
			return nil, fmt.Errorf("build menu: %s: %w", f.Name, ErrMenuCrash)
		case GenerationIgnored:
			continue
		}
		if f.Gen == nil {
			continue
		}
		if e, ok := byTime[f.Gen.ProtectionTime]; ok {
			e.Ambiguous = append(e.Ambiguous, e.File)
			e.File, e.Gen = f.Name, f.Gen
			continue
		}
		byTime[f.Gen.ProtectionTime] = &MenuEntry{File: f.Name, Gen: f.Gen}
	}
	keys := make([]int64, 0, len(byTime))
	for k := range byTime {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]MenuEntry, len(keys))
	for i, k := range keys {
		out[i] = *byTime[k]
		out[i].Index = i + 1
	}
	return out, nil
}

// MenuIndex returns the index the script shows for generation id among
// files (one node's view). It fails when a file crashes the script, when no
// loadable file holds id, or when another file shares its protectionTime
// (then the script's choice depends on directory order).
func MenuIndex(files []GenFile, id int) (int, error) {
	menu, err := BuildMenu(files)
	if err != nil {
		return 0, fmt.Errorf("compute menu index: %w", err)
	}
	for _, f := range files {
		if f.Kind != GenerationOK || f.Gen == nil || f.Gen.ID != id {
			continue
		}
		for _, e := range menu {
			if e.Gen.ProtectionTime != f.Gen.ProtectionTime {
				continue
			}
			if len(e.Ambiguous) > 0 {
				return 0, fmt.Errorf("compute menu index: generation %d shares its protectionTime with %d other file(s)", id, len(e.Ambiguous))
			}
			return e.Index, nil
		}
	}
	return 0, fmt.Errorf("compute menu index: generation %d not in the menu", id)
}

// MenuDateLayout is the script's %Y-%m-%d %H:%M:%S.
const MenuDateLayout = "2006-01-02 15:04:05"

// RenderMenuLine renders one menu line exactly as the script prints it,
// without the separator that follows it: index, local date in loc, display
// name and status, separated by tabs.
func RenderMenuLine(index int, g *Generation, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return strconv.Itoa(index) + "\t" + g.Time().In(loc).Format(MenuDateLayout) + "\t" + g.DisplayName + "\tstatus: " + g.StatusText()
}

// MenuPrompt returns the script's prompt for n entries, without separators.
func MenuPrompt(n int) string {
	return "Choose backup generation to restore (1-" + strconv.Itoa(n) + "): "
}

// RenderMenu returns the bytes one menu display writes for the family
// (domain §3.3): legacy puts a newline after each line and none after the
// prompt; bm4, bm4-es and bm5 concatenate the lines, then "\n", the prompt
// and "\n".
func RenderMenu(family string, lines []string) []byte {
	var b bytes.Buffer
	if family == FamilyLegacy {
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		b.WriteString(MenuPrompt(len(lines)))
		return b.Bytes()
	}
	for _, l := range lines {
		b.WriteString(l)
	}
	b.WriteByte('\n')
	b.WriteString(MenuPrompt(len(lines)))
	b.WriteByte('\n')
	return b.Bytes()
}

// MenuLine is one parsed menu line.
type MenuLine struct {
	Index       int
	Date        string
	DisplayName string
	Status      string // "OK", "Ending with errors", "Ending with warnings"
}

// String renders the line as the script printed it.
func (l MenuLine) String() string {
	return strconv.Itoa(l.Index) + "\t" + l.Date + "\t" + l.DisplayName + "\tstatus: " + l.Status
}

var (
	menuLineRe = regexp.MustCompile(`([0-9]+)\t([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})\t([^\t\r\n]*)\tstatus: (Ending with errors|Ending with warnings|OK)`)
	promptRe   = regexp.MustCompile(`Choose backup generation to restore \(1-([0-9]+)\): `)
)

// ParseMenu parses the first menu display in b, output of any family (with
// or without separators between lines, "\r\n" from a PTY), possibly cut
// short. prompt says whether the prompt was seen; complete says whether the
// prompt was seen and announces exactly the entries 1..N that precede it.
// Later repetitions of the menu (the script redisplays it after an invalid
// answer) are ignored.
func ParseMenu(b []byte) (entries []MenuLine, prompt bool, complete bool) {
	end := len(b)
	n := -1
	if loc := promptRe.FindSubmatchIndex(b); loc != nil {
		prompt = true
		end = loc[0]
		n, _ = strconv.Atoi(string(b[loc[2]:loc[3]]))
	}
	head := b[:end]
	for _, m := range menuLineRe.FindAllSubmatch(head, -1) {
		idx, err := strconv.Atoi(string(m[1]))
		if err != nil {
			continue
		}
		entries = append(entries, MenuLine{Index: idx, Date: string(m[2]), DisplayName: string(m[3]), Status: string(m[4])})
	}
	// In the concatenated layout the digits of the next index follow
	// "status: OK" directly, so the greedy regexp cannot eat them; but an
	// index of a line preceded by other text may include stray digits,
	// which the 1..N sequence check below catches.
	if !prompt || n != len(entries) {
		return entries, prompt, false
	}
	for i, e := range entries {
		if e.Index != i+1 {
			return entries, prompt, false
		}
	}
	return entries, prompt, true
}
