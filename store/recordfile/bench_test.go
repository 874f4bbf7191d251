package recordfile_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/otpgate/otpgate/internal/sample"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

const benchRows = 200_000

var (
	benchOnce  sync.Once
	benchJSONL []byte
	benchCSV   []byte
	benchErr   error
)

// benchData generates benchRows sample records as JSON Lines and converts
// them to CSV with up to three dose column groups.
func benchData(b *testing.B) (jsonl, csvData []byte) {
	b.Helper()
	benchOnce.Do(func() {
		var jb bytes.Buffer
		if benchErr = sample.Write(&jb, benchRows, 1); benchErr != nil {
			return
		}
		benchJSONL = jb.Bytes()
		var cb bytes.Buffer
		w := csv.NewWriter(&cb)
		header := []string{"reference_id", "name", "birth_year", "gender", "mobile", "id_type", "id_number"}
		for d := 1; d <= 3; d++ {
			header = append(header, fmt.Sprintf("dose%d_vaccine", d), fmt.Sprintf("dose%d_date", d), fmt.Sprintf("dose%d_center", d))
		}
		w.Write(header)
		sc := bufio.NewScanner(bytes.NewReader(benchJSONL))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct {
				RefID     string `json:"reference_id"`
				Name      string `json:"name"`
				BirthYear int    `json:"birth_year"`
				Gender    string `json:"gender"`
				Mobile    string `json:"mobile"`
				IDType    string `json:"id_type"`
				IDNumber  string `json:"id_number"`
				Doses     []struct {
					Dose                  int
					Vaccine, Date, Center string
				} `json:"doses"`
			}
			if benchErr = json.Unmarshal(sc.Bytes(), &rec); benchErr != nil {
				return
			}
			row := make([]string, len(header))
			copy(row, []string{rec.RefID, rec.Name, strconv.Itoa(rec.BirthYear), rec.Gender, rec.Mobile, rec.IDType, rec.IDNumber})
			for _, d := range rec.Doses {
				if d.Dose >= 1 && d.Dose <= 3 {
					i := 7 + 3*(d.Dose-1)
					row[i], row[i+1], row[i+2] = d.Vaccine, d.Date, d.Center
				}
			}
			w.Write(row)
		}
		w.Flush()
		benchErr = w.Error()
		benchCSV = cb.Bytes()
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchJSONL, benchCSV
}

func benchRowsOf(b *testing.B, data []byte, format recordfile.Format) {
	o := opts()
	o.Format = format
	f, err := recordfile.New(bytes.NewReader(data), int64(len(data)), o)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := f.Rows(context.Background(), func(r store.ImportRow) error {
			if r.Problem != "" {
				return fmt.Errorf("line %d: %s", r.Line, r.Problem)
			}
			n++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != benchRows {
			b.Fatalf("%d rows, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*benchRows), "µs/row")
}

func BenchmarkRowsJSONL(b *testing.B) {
	jsonl, _ := benchData(b)
	benchRowsOf(b, jsonl, recordfile.FormatJSONL)
}

func BenchmarkRowsCSV(b *testing.B) {
	_, csvData := benchData(b)
	benchRowsOf(b, csvData, recordfile.FormatCSV)
}
