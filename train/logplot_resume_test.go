package train

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestTruncateLogDamagedLine: a damaged line in the middle of log.jsonl
// costs only itself (before the fix, everything after it was dropped: 460
// lines became 23); lines after the resume step and a cut last line are
// dropped as before.
func TestTruncateLogDamagedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), LogFile)
	var b bytes.Buffer
	for s := 1; s <= 40; s++ {
		if s == 10 {
			b.WriteString("{\"type\":\"step\",\"st\x00garbage\n")
		}
		r, _ := json.Marshal(Record{Type: "step", Step: s, Loss: float64(s)})
		b.Write(r)
		b.WriteByte('\n')
	}
	b.WriteString(`{"type":"step","step":41,"lo`) // cut by a kill
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pts, err := truncateLog(path, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 30 || pts[29].step != 30 {
		t.Fatalf("%d losses kept (last %v), want steps 1..30", len(pts), pts[len(pts)-1])
	}
	lines, err := readLogLines(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 31 || lines[9].ok || !bytes.Contains(lines[9].raw, []byte("garbage")) {
		t.Errorf("rewritten log: %d lines (want 30 records and the damaged line kept in place)", len(lines))
	}
	// A damaged line after the resume step goes with the records around it.
	if _, err := truncateLog(path, 5); err != nil {
		t.Fatal(err)
	}
	if lines, _ := readLogLines(path); len(lines) != 5 {
		t.Errorf("after truncating to step 5: %d lines, want 5", len(lines))
	}
}
