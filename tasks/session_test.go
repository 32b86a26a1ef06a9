package tasks

import (
	"os"
	"testing"
)

// TestRecordWriter_SignalsRecordsWhateverTheChunks feeds captured facts in
// chunks of every size and expects every record key to be signalled, as
// ParseRecords frames them, and never a key before its record is complete.
func TestRecordWriter_SignalsRecordsWhateverTheChunks(t *testing.T) {
	raw, err := os.ReadFile("testdata/facts/captured-core.out")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseRecords(raw)
	if err != nil {
		t.Fatal(err)
	}
	endAt := len(raw) // "end" is the last record: complete only with the last byte
	for size := 1; size <= 257; size += 16 {
		w := newRecordWriter()
		for off := 0; off < len(raw); off += size {
			if w.seen("end") {
				t.Fatalf("chunk %d: end signalled at %d of %d bytes", size, off, endAt)
			}
			_, _ = w.Write(raw[off:min(off+size, len(raw))])
		}
		for _, r := range recs {
			if !w.seen(r.Key) {
				t.Fatalf("chunk %d: key %q never signalled", size, r.Key)
			}
		}
	}
}

func FuzzNextRecord(f *testing.F) {
	if b, err := os.ReadFile("testdata/facts/captured-core.out"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("@@prapush a 1\nx\n@@prapush b 0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w := newRecordWriter()
		_, _ = w.Write(b)
		recs, _ := ParseRecords(b)
		for _, r := range recs {
			if !w.seen(r.Key) {
				t.Fatalf("ParseRecords found %q, the stream framer did not", r.Key)
			}
		}
	})
}
