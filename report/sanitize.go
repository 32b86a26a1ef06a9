package report

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// SanitizeText makes a string that came from a node safe for a terminal or
// a text file: invalid UTF-8 becomes U+FFFD, and every control character but
// newline and tab (escape sequences, carriage returns, bells, C1 controls,
// bidi overrides) is shown as a visible \x.. or \u.... escape instead of
// being interpreted.
func SanitizeText(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString("\uFFFD")
		case needsEscape(r):
			if r < 0x100 {
				b.WriteString(`\x`)
				b.WriteByte("0123456789abcdef"[r>>4])
				b.WriteByte("0123456789abcdef"[r&0xf])
			} else {
				b.WriteString(`\u`)
				for shift := 12; shift >= 0; shift -= 4 {
					b.WriteByte("0123456789abcdef"[(r>>uint(shift))&0xf])
				}
			}
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	if unicode.IsControl(r) {
		return true
	}
	// Bidirectional overrides and isolates can reorder what a reader sees.
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}
