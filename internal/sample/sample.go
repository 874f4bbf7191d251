// Package sample provides fictional beneficiary records: a small, fixed
// demo file for `otpgate demo`, and a fast deterministic generator of
// synthetic import files for tests and benchmarks. No record here belongs to
// a real person; the demo mobiles sit in the +91 90000 000xx block and every
// demo centre is marked "(sample)".
package sample

import (
	_ "embed"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/otpgate/otpgate/pii"
)

//go:embed demo.jsonl
var demo []byte

// Demo returns the demo import file, JSON Lines: twelve fictional
// beneficiaries on nine mobiles (one carries three, another two), with zero
// to three doses each. The caller may modify the returned slice.
func Demo() []byte { return slices.Clone(demo) }

// DemoMobile is a mobile of the demo file and how many beneficiaries are
// registered on it, for the demo's "try these" hint.
type DemoMobile struct {
	Mobile        string // 10 national digits, e.g. "9000000001"
	Beneficiaries int
}

// DemoMobiles lists the distinct mobiles of Demo in file order.
func DemoMobiles() []DemoMobile { return slices.Clone(demoMobiles()) }

var demoMobiles = sync.OnceValue(func() []DemoMobile {
	var out []DemoMobile
	for line := range strings.Lines(string(demo)) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var row struct {
			Mobile string `json:"mobile"`
		}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			panic("sample: demo.jsonl: " + err.Error()) // embedded and tested: cannot happen
		}
		m, err := pii.ParseMobile(row.Mobile)
		if err != nil {
			panic("sample: demo.jsonl: bad mobile") // as above
		}
		national := strings.TrimPrefix(m.E164(), "+"+pii.DefaultCountry)
		i := slices.IndexFunc(out, func(d DemoMobile) bool { return d.Mobile == national })
		if i < 0 {
			out = append(out, DemoMobile{Mobile: national})
			i = len(out) - 1
		}
		out[i].Beneficiaries++
	}
	return out
})
