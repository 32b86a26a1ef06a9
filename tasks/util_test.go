package tasks

import (
	"os/exec"
	"reflect"
	"strconv"
	"strings"
)

func execLookPath(s string) (string, error) { return exec.LookPath(s) }

func equalAny(a, b any) bool { return reflect.DeepEqual(a, b) }

// frame renders records in the facts wire format.
func frame(recs []Record) []byte {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString("@@prapush " + r.Key + " " + strconv.Itoa(len(r.Value)) + "\n")
		b.Write(r.Value)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
