package store

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// ErrLinkInvalid covers every refused deep-link token: unknown, expired,
// already used, or presented by someone other than the staff member it
// was made for.
var ErrLinkInvalid = errors.New("store: link invalid")

const pfxLink = 'k' // k + token → link

type link struct {
	Requester string    `json:"q"`
	ExpiresAt time.Time `json:"e"`
	Used      bool      `json:"u,omitempty"`
	Tag       string    `json:"g,omitempty"`
}

// CreateLink makes a random one-time token for requester, valid for ttl,
// for the lookup whose request tag is tag. It moves a staff lookup from a
// group chat to a private one: the group sees only a button carrying the
// token.
func (s *Store) CreateLink(ctx context.Context, requester, tag string, ttl time.Duration) (string, error) {
	token := NewID()
	b, _ := json.Marshal(link{Requester: requester, ExpiresAt: s.now().Add(ttl), Tag: tag})
	err := s.update(ctx, func(txn kv.Txn) error {
		return txn.SetEntry(kv.NewEntry(append([]byte{pfxLink}, token...), b).WithTTL(ttl + time.Minute))
	})
	if err != nil {
		return "", fmt.Errorf("store: create link: %w", err)
	}
	return token, s.sync()
}

// RedeemLink consumes token for requester and returns the request tag of
// the lookup it was made for: only that lookup's code may be entered
// through it. A token presented by anyone else is refused and stays usable
// by its owner until it expires.
func (s *Store) RedeemLink(ctx context.Context, token, requester string) (tag string, err error) {
	if token == "" || len(token) > 64 {
		return "", ErrLinkInvalid
	}
	key := append([]byte{pfxLink}, token...)
	err = s.update(ctx, func(txn kv.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, kv.ErrKeyNotFound) {
			return ErrLinkInvalid
		}
		if err != nil {
			return err
		}
		var l link
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &l) }); err != nil {
			return ErrLinkInvalid
		}
		if l.Used || !s.now().Before(l.ExpiresAt) || subtle.ConstantTimeCompare([]byte(l.Requester), []byte(requester)) != 1 {
			return ErrLinkInvalid
		}
		l.Used, tag = true, l.Tag
		b, _ := json.Marshal(l)
		return txn.SetEntry(kv.NewEntry(key, b).WithTTL(max(time.Until(l.ExpiresAt), 0) + time.Minute))
	})
	if err != nil {
		return "", err
	}
	return tag, s.sync()
}
