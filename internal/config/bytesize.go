package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

var _ envconfig.Decoder = (*ByteSize)(nil)

// ByteSize is an amount of memory, written as a whole number with an
// optional unit: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of
// 1000). "0" or "off" means no limit.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// Decode implements envconfig.Decoder.
func (b *ByteSize) Decode(value string) error {
	v := strings.TrimSpace(value)
	if strings.EqualFold(v, "off") || v == "0" {
		*b = 0
		return nil
	}
	mult := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return errors.New("must be a whole number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB), or off")
	}
	*b = ByteSize(n * mult)
	return nil
}

func (b ByteSize) String() string {
	switch {
	case b == 0:
		return "off"
	case b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%dB", int64(b))
}
