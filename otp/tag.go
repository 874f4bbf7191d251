package otp

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// TagLetters are the letters a request tag is drawn from: capitals that no
// reader confuses with a digit or with each other (no B, G, I, O, Q, S, Z).
const TagLetters = "ACDEFHJKLMNPRTUVWXY"

// newTag draws a request tag, two letters and two digits ("KX42"), from
// crypto/rand: 19·19·100 = 36,100 tags, enough for a person to tell their
// own request from someone else's, and saying nothing about the lookup.
func newTag() (string, error) {
	b := make([]byte, 4)
	for i := range b {
		alphabet := TagLetters
		if i >= 2 {
			alphabet = "0123456789"
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("otp: random: %w", err)
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b), nil
}

// tagMemo remembers the last tag each requester was shown, so that the same
// lookup repeated inside the cooldown — when the store keeps the code
// already on its way — shows the tag that code's SMS carries. It holds no
// record data and depends only on what the requester itself asked, never on
// whether anything matched. Its zero value is ready; it is bounded.
type tagMemo struct {
	mu sync.Mutex
	m  map[string]memoEntry
}

type memoEntry struct {
	lookup, tag string
	at          time.Time
}

const (
	maxMemo = 1 << 16
	// memoSlack covers the time between Request and the store's cooldown
	// check (the queue): a tag reused a little too long costs nothing (a new
	// code then carries it), a tag not reused would make the store refuse to
	// keep the code on its way.
	memoSlack = 10 * time.Second
)

func (t *tagMemo) tag(who, lookup string, now time.Time, cooldown time.Duration) (string, error) {
	if cooldown <= 0 {
		return newTag()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	keep := cooldown + memoSlack
	if e, ok := t.m[who]; ok && e.lookup == lookup && now.Sub(e.at) < keep {
		// Sliding: the store's cooldown may have restarted with a code sent
		// for one of these repeats.
		e.at = now
		t.m[who] = e
		return e.tag, nil
	}
	tag, err := newTag()
	if err != nil {
		return "", err
	}
	if t.m == nil {
		t.m = map[string]memoEntry{}
	}
	if len(t.m) >= maxMemo {
		for k, e := range t.m {
			if now.Sub(e.at) >= keep {
				delete(t.m, k)
			}
		}
	}
	if _, ok := t.m[who]; ok || len(t.m) < maxMemo {
		t.m[who] = memoEntry{lookup: lookup, tag: tag, at: now}
	}
	return tag, nil
}
