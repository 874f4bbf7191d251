// Package otptest holds test doubles for otp: Phone is an in-memory SMS recipient for tests and benchmarks: an
// otp.Sender that keeps every message by number, so a test can read the
// code "on the phone" the way a person would.
package otptest

import (
	"context"
	"regexp"
	"sync"

	"github.com/otpgate/otpgate/pii"
)

// Phone is safe for concurrent use. Its zero value is ready.
type Phone struct {
	mu   sync.Mutex
	msgs map[pii.Mobile][]string
	fail error
}

// Send records body for to, or returns the failure set with Fail.
func (p *Phone) Send(_ context.Context, to pii.Mobile, body string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	if p.msgs == nil {
		p.msgs = map[pii.Mobile][]string{}
	}
	p.msgs[to] = append(p.msgs[to], body)
	return nil
}

// Fail makes every later Send return err (nil restores delivery).
func (p *Phone) Fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// Last returns the last message to mobile (any accepted spelling), or "".
func (p *Phone) Last(mobile string) string {
	m, err := pii.ParseMobile(mobile)
	if err != nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ms := p.msgs[m]
	if len(ms) == 0 {
		return ""
	}
	return ms[len(ms)-1]
}

// Code returns the 6-digit code in the last message to mobile, or "".
func (p *Phone) Code(mobile string) string { return sixDigits.FindString(p.Last(mobile)) }

// Count returns the number of messages received, all numbers together.
func (p *Phone) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ms := range p.msgs {
		n += len(ms)
	}
	return n
}

// Messages returns every message to mobile (any accepted spelling), oldest
// first.
func (p *Phone) Messages(mobile string) []string {
	m, err := pii.ParseMobile(mobile)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.msgs[m]...)
}
