package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/otpgate/otpgate/pii"
)

func TestSendFormat(t *testing.T) {
	tests := []struct {
		name string
		to   pii.Mobile
		body string
		want string
	}{
		{
			name: "plain",
			to:   "+919876543210",
			body: "482913 is your otpgate code. Valid 3 min. Do not share it.",
			want: "SMS to +91******3210: 482913 is your otpgate code. Valid 3 min. Do not share it.\n",
		},
		{
			name: "newlines become spaces",
			to:   "+919876543210",
			body: "482913 is your code.\nValid 3 min.\r\nDo not share.",
			want: "SMS to +91******3210: 482913 is your code. Valid 3 min. Do not share.\n",
		},
		{
			name: "control characters and separators",
			to:   "+14155550123",
			body: "a\rb\tc\u2028d\x1b[2Je",
			want: "SMS to +1******0123: a b c d [2Je\n",
		},
		{
			name: "non-latin text kept",
			to:   "+919876543210",
			body: "482913 आपका कोड है",
			want: "SMS to +91******3210: 482913 आपका कोड है\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := New(&buf).Send(context.Background(), tt.to, tt.body); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if strings.Contains(buf.String(), tt.to.E164()) {
				t.Errorf("output contains the full number: %q", buf.String())
			}
		})
	}
}

func TestSendConcurrentOneLineEach(t *testing.T) {
	var buf bytes.Buffer
	s := New(&buf)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("%06d is your code.\nDo not share it.", i)
			if err := s.Send(context.Background(), "+919876543210", body); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), n, buf.String())
	}
	seen := make(map[string]bool)
	for _, l := range lines {
		if !strings.HasPrefix(l, "SMS to +91******3210: ") || !strings.HasSuffix(l, " is your code. Do not share it.") {
			t.Errorf("malformed line %q", l)
		}
		seen[l] = true
	}
	if len(seen) != n {
		t.Errorf("got %d distinct lines, want %d", len(seen), n)
	}
}

func TestSendCancelled(t *testing.T) {
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := New(&buf).Send(ctx, "+919876543210", "123456")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q after cancellation", buf.String())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestSendWriteError(t *testing.T) {
	err := New(failWriter{}).Send(context.Background(), "+919876543210", "123456")
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want the write error", err)
	}
}
